"""Secrets stay secrets. Offline, every secret a stack uses is a unique placeholder: a `secure:`
value the stack file sets, or one the engine supplies for a secret the operator sets with
`pulumi config set --secret` (`tools.engine.OFFLINE_SECRETS`; committed stack files need carry
no fake ciphertext). None may appear in any file the offline plan writes, and the objects that
carry one show `[secret]`. (That the configured root really flows into the `cacerts` Secret, so
its absence here is masking and not disuse, is proven in
test_mesh_ca.test_secret_carries_the_four_files_as_secrets.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import config
from components.base.model import ConfigError
from components.base.profiles import TIERS, tier_of
from tests.conftest import STACKS, stack_run
from tools.engine import (
    OFFLINE_SECRETS,
    SECRET,
    attempt,
    read_stack_config,
    stack_file,
    with_offline_secrets,
)

PREFIX = "service-mesh:"


def test_no_configured_secret_in_any_plan_file(plan):
    run, out = plan
    assert len(run.secret_values) >= 2, "the stack has secrets (mesh CA root at least)"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"resources.json", "outputs.json"} <= {p.name for p in files}
    for path in files:
        text = path.read_text()
        for value in run.secret_values:
            assert value not in text, f"{path.relative_to(out)} contains a configured secret"


def test_secret_carrying_objects_show_the_marker(plan):
    _, out = plan
    cacerts = (out / "manifests" / "secret-istio-system-cacerts.yaml").read_text()
    assert f"stringData: '{SECRET}'" in cacerts
    cert = next(
        r
        for r in json.loads((out / "resources.json").read_text())
        if r["type"] == "tls:index/locallySignedCert:LocallySignedCert"
    )
    assert cert["inputs"]["caPrivateKeyPem"] == SECRET


# --- secrets the offline engine supplies -----------------------------------------------------


def _without_secure_entries(stack: str) -> dict[str, Any]:
    """A committed stack file's config with no `secure:` value: as the committed files are
    meant to be, whatever they hold today."""
    raw = yaml.safe_load(stack_file(stack).read_text())["config"]
    return {k: v for k, v in raw.items() if not (isinstance(v, dict) and "secure" in v)}


def _stack_file(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "Pulumi.nosecrets.yaml"
    path.write_text(yaml.safe_dump({"config": cfg}, sort_keys=False))
    return path


def _plan(run) -> list[dict[str, Any]]:
    return [r.to_json() for r in sorted(run.resources, key=lambda r: r.urn)]


def test_offline_secrets_are_the_secret_fields_of_the_config():
    aliases = {config.PlatformConfig.model_fields[f].alias or f for f in config.SECRET_FIELDS}
    assert set(OFFLINE_SECRETS) == set(TIERS), "every tier says which secrets it assumes set"
    for tier, keys in OFFLINE_SECRETS.items():
        assert keys and set(keys) <= aliases, (tier, set(keys) - aliases)
    assert set(OFFLINE_SECRETS["production"]) == aliases, "production uses every secret"


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_file_without_ciphertext_plans_as_the_committed_one(tmp_path, stack):
    """The engine supplies a marked, secret placeholder for each secret its tier assumes, and
    the plan is exactly the committed stack's."""
    path = _stack_file(tmp_path, _without_secure_entries(stack))
    values, secret_keys, placeholders = read_stack_config(path)
    assumed = OFFLINE_SECRETS[tier_of(stack)]
    for key in assumed:
        assert PREFIX + key in secret_keys
        assert values[PREFIX + key].startswith("offline-placeholder-for-")
    assert sorted(placeholders) == sorted(values[PREFIX + key] for key in assumed)
    run = attempt(stack, path)
    assert run.error is None, run.error
    committed = stack_run(stack)
    assert _plan(run) == _plan(committed)
    assert sorted(run.secret_values) == sorted(committed.secret_values)
    assert run.outputs == committed.outputs


def test_dev_gets_no_alert_receivers_it_never_had():
    values, _, _ = read_stack_config(stack_file("dev"))
    assert not {PREFIX + "alertPagerUrl", PREFIX + "alertTicketUrl"} & set(values)


def test_with_offline_secrets_writes_the_assumed_secrets_as_secure_entries(tmp_path):
    cfg = with_offline_secrets(_without_secure_entries("staging"))
    for key in OFFLINE_SECRETS["staging"]:
        assert cfg[PREFIX + key] == {"secure": "offline-placeholder"}
    as_written = read_stack_config(_stack_file(tmp_path, cfg), supply_secrets=())
    supplied = read_stack_config(_stack_file(tmp_path, _without_secure_entries("staging")))
    assert as_written[0] == supplied[0]
    assert sorted(as_written[1]) == sorted(supplied[1])
    assert sorted(as_written[2]) == sorted(supplied[2])


def test_supply_secrets_empty_runs_the_file_as_written(tmp_path):
    path = _stack_file(tmp_path, _without_secure_entries("production"))
    _, secret_keys, placeholders = read_stack_config(path, supply_secrets=())
    assert secret_keys == [] and placeholders == []
    run = attempt("production", path, supply_secrets=())
    assert isinstance(run.error, ConfigError) and run.resources == []


def test_the_real_path_refuses_missing_secrets_naming_the_command(tmp_path):
    """Without the offline placeholders, as `pulumi up` sees a stack whose secrets were never
    set: our own message per secret, naming the command that sets it, before any resource."""
    path = _stack_file(tmp_path, _without_secure_entries("production"))
    values, secret_keys, _ = read_stack_config(path, supply_secrets=())
    raw = {k.removeprefix(PREFIX): v for k, v in values.items() if k.startswith(PREFIX)}
    with pytest.raises(ConfigError) as error:
        config.parse(raw, frozenset(secret_keys))
    problems = {p.key: p.allowed for p in error.value.problems}
    for key in ("alertPagerUrl", "alertTicketUrl", "dnsApiToken"):
        assert f"pulumi config set --secret {PREFIX}{key}" in problems[key], problems[key]
    # The mesh root comes from `python -m tools.mesh_ca`, which prints the two commands.
    assert "tools.mesh_ca" in problems["meshCaRootCert"]
    assert "decrypt" not in str(error.value)


def test_a_stack_file_holding_secrets_is_taken_as_written(tmp_path):
    """Once the operator has set some secrets, the offline plan supplies none: a forgotten one is
    refused offline exactly as `pulumi up` would refuse it."""
    cfg = {
        **_without_secure_entries("production"),
        **{
            PREFIX + k: {"secure": "v1:set-by-the-operator"}
            for k in ("meshCaRootCert", "meshCaRootKey")
        },
    }
    path = _stack_file(tmp_path, cfg)
    _, secret_keys, _ = read_stack_config(path)
    assert sorted(secret_keys) == [PREFIX + "meshCaRootCert", PREFIX + "meshCaRootKey"]
    run = attempt("production", path)
    assert isinstance(run.error, ConfigError) and run.resources == []
    assert f"pulumi config set --secret {PREFIX}alertPagerUrl" in str(run.error)


def test_committed_stack_files_carry_no_ciphertext():
    """A placeholder `secure:` value fails `pulumi preview` with a decryption error far from its
    cause; the stack file says which secrets to set instead, and the engine supplies them."""
    for stack in STACKS:
        text = stack_file(stack).read_text()
        assert "secure:" not in text, stack
        for key in OFFLINE_SECRETS[tier_of(stack)]:
            assert f"pulumi config set --secret --stack {stack} {PREFIX}{key}" in text, key
