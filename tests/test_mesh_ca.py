"""Plug-in mesh CA: root from encrypted stack config, per-cluster intermediate issued by the
program, `istio-system/cacerts` written before istiod, protected in production; and the
`tools.mesh_ca` command that creates a root."""

from __future__ import annotations

import copy
import json
import stat

import pulumi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from components.base import mesh
from components.base.resources import secret_output
from components.security.component import MeshCertificateAuthority, MeshCertificateAuthorityArgs
from components.security.mesh_ca import CACERTS_KEYS, cacerts_data
from tests.conftest import STACKS, parsed_stack, run_config, stack_config, stack_run
from tests.schema import validate_k8s
from tools import mesh_ca as tool
from tools.engine import attempt
from tools.plan import manifest

SECRET = "kubernetes:core/v1:Secret"
LSC = "tls:index/locallySignedCert:LocallySignedCert"
SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"


parsed = parsed_stack


def istiod_release(run):
    found = [
        r for r in run.of_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("chart") == "istiod"
    ]
    assert len(found) == 1
    return found[0]


def cacerts(run):
    found = [r for r in run.of_type(SECRET) if r.inputs["metadata"]["name"] == "cacerts"]
    assert len(found) == 1
    return found[0]


# --- builder ---------------------------------------------------------------------------------


def test_cacerts_files_and_chain_order():
    data = cacerts_data("INTERMEDIATE", "KEY", "ROOT\n", ["OLDROOT"])
    assert tuple(data) == CACERTS_KEYS
    assert set(CACERTS_KEYS) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
    assert data["ca-cert.pem"] == "INTERMEDIATE\n"
    assert data["ca-key.pem"] == "KEY\n"
    assert data["cert-chain.pem"] == "INTERMEDIATE\nROOT\n", "intermediate first, then root"
    assert data["root-cert.pem"] == "ROOT\nOLDROOT\n", "extra roots trusted during rotation"


# --- whole stack -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_cacerts_secret_in_istio_system_is_secret_and_protected_in_production(stack):
    run = stack_run(stack)
    secret = cacerts(run)
    assert secret.inputs["metadata"]["namespace"] == mesh.ROOT_NAMESPACE
    assert secret.inputs["stringData"] == "[secret]"
    assert "data" not in secret.inputs
    assert secret.protect is (stack == "production")
    # The data is masked as a whole; validate the object with the four keys it carries.
    validate_k8s({**manifest(secret), "stringData": dict.fromkeys(CACERTS_KEYS, "[secret]")})
    ns = next(
        r
        for r in run.of_type("kubernetes:core/v1:Namespace")
        if r.inputs["metadata"]["name"] == mesh.ROOT_NAMESPACE
    )
    assert ns.urn in secret.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_waits_for_cacerts(stack):
    run = stack_run(stack)
    assert cacerts(run).urn in istiod_release(run).dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_intermediate_is_a_ca_issued_from_the_configured_root(stack):
    run = stack_run(stack)
    cert = run.one(LSC)
    assert cert.inputs["isCaCertificate"] is True
    assert cert.inputs["maxPathLength"] == 0
    assert cert.inputs["caPrivateKeyPem"] == "[secret]"
    assert cert.inputs["caCertPem"] == "[secret]"
    assert "cert_signing" in cert.inputs["allowedUses"]
    assert run.of_type(SELF_SIGNED) == [], "the root comes from config, not from state"


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_without_a_root_outside_production_one_is_kept_in_state(tmp_path, stack):
    cfg = copy.deepcopy(stack_config(stack))
    del cfg["service-mesh:meshCaRootCert"], cfg["service-mesh:meshCaRootKey"]
    run = run_config(tmp_path, stack, cfg)
    assert run.error is None, run.error
    root = run.one(SELF_SIGNED)
    assert root.inputs["isCaCertificate"] is True
    assert run.one(LSC).inputs["caPrivateKeyPem"] == "[secret]"


@pytest.mark.parametrize(
    ("stack", "drop"),
    [
        ("production", ("service-mesh:meshCaRootCert", "service-mesh:meshCaRootKey")),
        ("production", ("service-mesh:meshCaRootKey",)),
        ("dev", ("service-mesh:meshCaRootCert",)),
    ],
)
def test_missing_root_refused_in_production_and_half_a_root_everywhere(tmp_path, stack, drop):
    cfg = copy.deepcopy(stack_config(stack))
    for key in drop:
        del cfg[key]
    run = run_config(tmp_path, stack, cfg)
    assert run.error is not None and "service-mesh:meshCaRootCert" in str(run.error)
    assert "tools.mesh_ca" in str(run.error)
    assert run.resources == []


def test_root_in_plaintext_config_is_refused(tmp_path):
    cfg = copy.deepcopy(stack_config("production"))
    cfg["service-mesh:meshCaRootKey"] = "-----BEGIN PRIVATE KEY-----"
    run = run_config(tmp_path, "production", cfg)
    assert run.error is not None and "--secret" in str(run.error)
    assert "BEGIN PRIVATE KEY" not in str(run.error)
    assert run.resources == []


def test_early_renewal_must_fall_inside_the_validity(tmp_path):
    cfg = copy.deepcopy(stack_config("staging"))
    cfg["service-mesh:security"] = {
        "meshCa": {"intermediateValidityHours": 720, "earlyRenewalHours": 720}
    }
    run = run_config(tmp_path, "staging", cfg)
    assert run.error is not None
    assert "service-mesh:security.meshCa.earlyRenewalHours = 720" in str(run.error)
    assert run.resources == []


def test_production_refuses_an_unprotected_ca(tmp_path):
    cfg = copy.deepcopy(stack_config("production"))
    cfg.setdefault("service-mesh:security", {})["meshCa"] = {"protect": False}
    run = run_config(tmp_path, "production", cfg)
    assert run.error is not None and "service-mesh:security.meshCa.protect" in str(run.error)
    assert run.resources == []


def test_secret_carries_the_four_files_as_secrets():
    """Under the one offline engine: the component's Secret holds the four files istiod reads,
    every value a Pulumi secret, the chain being the intermediate then the configured root."""
    import pulumi_kubernetes as k8s

    cfg = parsed("production")
    seen: dict[str, object] = {}

    def program():
        ns = k8s.core.v1.Namespace("istio-system")
        ca = MeshCertificateAuthority(
            "t",
            MeshCertificateAuthorityArgs(
                stack_name=cfg.name,
                ca=cfg.security.mesh_ca,
                root_cert=secret_output(cfg.mesh_ca_root_cert),
                root_key=secret_output(cfg.mesh_ca_root_key),
                namespace=ns,
            ),
        )
        pulumi.Output.all(
            ca.secret.string_data,
            pulumi.Output.is_secret(ca.secret.string_data),
            ca.intermediate.cert_pem,
        ).apply(lambda v: seen.update(data=v[0], secret=v[1], cert=v[2]))

    run = attempt("production", program=program)
    assert run.error is None, run.error
    data = seen["data"]
    assert seen["secret"] is True
    assert set(data) == set(CACERTS_KEYS)
    assert data["ca-cert.pem"] == seen["cert"]
    assert data["cert-chain.pem"] == seen["cert"] + data["root-cert.pem"]
    assert data["ca-key.pem"].startswith("-----BEGIN PRIVATE KEY-----")
    # The configured (engine placeholder) root is what istiod will trust.
    assert data["root-cert.pem"].startswith("offline-placeholder-for-service-mesh-meshCaRoot")
    secret = run.one("kubernetes:core/v1:Secret")
    assert "offline-placeholder" not in json.dumps(secret.inputs)  # masked in the plan


# --- the root CA command ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def root():
    return tool.new_root("test mesh root CA", years=1, key_size=2048)


def test_new_root_is_a_self_signed_ca_allowing_one_intermediate(root):
    cert, key = root
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca and basic.path_length == 1
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert cert.issuer == cert.subject
    key.public_key().verify(
        cert.signature,
        cert.tbs_certificate_bytes,
        padding.PKCS1v15(),
        cert.signature_hash_algorithm,
    )


def test_command_writes_private_key_0600_and_prints_stdin_config_lines(tmp_path, capsys):
    assert tool.main(["--stack", "production", "--out", str(tmp_path / "ca")]) == 0
    out = capsys.readouterr().out
    key_path = tmp_path / "ca" / "root-key.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key_text = key_path.read_text()
    serialization.load_pem_private_key(key_text.encode(), password=None)
    x509.load_pem_x509_certificate((tmp_path / "ca" / "root-cert.pem").read_bytes())
    assert (
        f"pulumi config set --secret --stack production service-mesh:meshCaRootKey < {key_path}"
    ) in out
    assert "service-mesh:meshCaRootCert" in out
    assert "PRIVATE KEY" not in out, "the key never appears on a command line"
    assert tool.main(["--stack", "production", "--out", str(tmp_path / "ca")]) == 2
    assert key_path.read_text() == key_text, "an existing root key is never overwritten"


@pytest.mark.parametrize("existing", ["root-cert.pem", "root-key.pem"])
def test_command_never_overwrites_either_file_it_did_not_write(tmp_path, existing):
    """An operator's own root-cert.pem (or key) in the output directory stays as it is, and no
    half of a new root is left next to it."""
    out = tmp_path / "ca"
    out.mkdir()
    (out / existing).write_text("mine\n")
    assert tool.main(["--stack", "production", "--out", str(out)]) == 2
    assert (out / existing).read_text() == "mine\n"
    assert sorted(p.name for p in out.iterdir()) == [existing]


@pytest.mark.parametrize("existing", ["root-cert.pem", "root-key.pem"])
def test_writing_creates_both_files_new_even_after_the_check(tmp_path, root, existing):
    """The guarantee is in the write (O_EXCL), not in a look before it: a file that appears
    after the command's check is not truncated, and a link is not followed."""
    cert, key = root
    out = tmp_path / "ca"
    out.mkdir()
    (out / existing).write_text("appeared meanwhile\n")
    with pytest.raises(FileExistsError):
        tool.write_root(out, cert, key)
    assert (out / existing).read_text() == "appeared meanwhile\n"
    assert sorted(p.name for p in out.iterdir()) == [existing]
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text("not yours\n")
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / existing).symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        tool.write_root(linked, cert, key)
    assert elsewhere.read_text() == "not yours\n"
    assert tool.main(["--stack", "dev", "--out", str(linked)]) == 2
    assert elsewhere.read_text() == "not yours\n"
