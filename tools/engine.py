"""Offline engine: runs the real `__main__.py` for a stack under Pulumi's mock engine.

Deterministic fake cloud outputs (documentation IP ranges, fake ids, a fake kubeconfig), `secure:`
config values replaced by placeholders and marked secret, invokes answered by fakes, and every
registered resource recorded with its parent, provider, dependencies, protect flag and inputs.
The plan tool and the tests both use it, so what is tested is what `pulumi up` runs.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

PROJECT = "service-mesh"
ROOT = Path(__file__).resolve().parent.parent
SECRET = "[secret]"
UNKNOWN = "[unknown]"

_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

FAKE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: do-fake
  cluster:
    server: https://fake-cluster.k8s.ondigitalocean.invalid
    certificate-authority-data: ''
contexts:
- name: do-fake
  context: {cluster: do-fake, user: do-fake-admin}
current-context: do-fake
users:
- name: do-fake-admin
  user: {token: offline-fake-token}
"""


@dataclass
class Resource:
    """One registered resource, as the engine saw it."""

    urn: str
    type: str
    name: str
    parent: str | None
    provider: str | None
    dependencies: list[str]
    protect: bool
    inputs: dict[str, Any]
    custom: bool
    remote: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "provider": self.provider,
            "dependencies": self.dependencies,
            "protect": self.protect,
            "inputs": self.inputs,
        }


@dataclass
class Run:
    """Everything one offline run produced."""

    stack: str
    resources: list[Resource] = field(default_factory=list)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    error: BaseException | None = None  # set by `attempt` when the program failed

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} {name or ''}, found {len(found)}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]


# --- wire values -> plain JSON, secrets masked ----------------------------------------------


def plain(value: Any) -> Any:
    """Turn a deserialized protobuf Struct into plain data, masking secrets and unknowns, with
    integral numbers as ints (the API server and schemas expect `port: 443`, not `443.0`)."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return SECRET
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire has only doubles; the program sent an int
    return value


# --- fake cloud ------------------------------------------------------------------------------


def _fake_id(type_: str, name: str) -> str:
    return hashlib.sha256(f"{type_}::{name}".encode()).hexdigest()[:24]


def _doc_ip(name: str) -> str:
    """An address from TEST-NET-3 (RFC 5737), stable per resource name."""
    return f"203.0.113.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 2}"


def _fake_pem(label: str, name: str) -> str:
    body = hashlib.sha256(f"{label}:{name}".encode()).hexdigest()
    return f"-----BEGIN {label}-----\nOFFLINE{body}\n-----END {label}-----\n"


FakeOutputs = Callable[[str, dict[str, Any], str], dict[str, Any]]

# Per resource type: extra outputs a real provider would compute. Layers add their types here.
FAKE_OUTPUTS: dict[str, FakeOutputs] = {
    "digitalocean:index/vpc:Vpc": lambda n, i, id_: {"vpcUrn": f"do:vpc:{id_}"},
    "digitalocean:index/kubernetesCluster:KubernetesCluster": lambda n, i, id_: {
        "clusterUrn": f"do:kubernetes:{id_}",
        "endpoint": f"https://{id_}.k8s.ondigitalocean.invalid",
        "ipv4Address": _doc_ip(n),
        "status": "running",
        "kubeConfigs": [{"rawConfig": FAKE_KUBECONFIG, "token": "offline-fake-token"}],
    },
    "digitalocean:index/loadBalancer:LoadBalancer": lambda n, i, id_: {
        "ip": _doc_ip(n),
        "loadBalancerUrn": f"do:loadbalancer:{id_}",
        "status": "active",
    },
    "digitalocean:index/domain:Domain": lambda n, i, id_: {
        "domainUrn": f"do:domain:{i.get('name')}"
    },
    "digitalocean:index/spacesBucket:SpacesBucket": lambda n, i, id_: {
        "bucketUrn": f"do:space:{i.get('name')}",
        "bucketDomainName": f"{i.get('name')}.{i.get('region', 'nyc3')}.digitaloceanspaces.invalid",
    },
    # pulumi-tls (mesh CA): fake PEM text, stable per resource name.
    "tls:index/privateKey:PrivateKey": lambda n, i, id_: {
        "privateKeyPem": _fake_pem("PRIVATE KEY", n),
        "publicKeyPem": _fake_pem("PUBLIC KEY", n),
    },
    "tls:index/certRequest:CertRequest": lambda n, i, id_: {
        "certRequestPem": _fake_pem("CERTIFICATE REQUEST", n)
    },
    "tls:index/locallySignedCert:LocallySignedCert": lambda n, i, id_: {
        "certPem": _fake_pem("CERTIFICATE", n)
    },
    "tls:index/selfSignedCert:SelfSignedCert": lambda n, i, id_: {
        "certPem": _fake_pem("CERTIFICATE", n)
    },
    "random:index/randomPassword:RandomPassword": lambda n, i, id_: {
        "result": f"offline-password-{id_}"
    },
    "digitalocean:index/spacesKey:SpacesKey": lambda n, i, id_: {
        "accessKey": f"OFFLINEKEY{id_[:10].upper()}",
        "secretKey": f"offline-spaces-secret-{id_}",
    },
}


def _invoke_kubernetes_versions(args: dict[str, Any]) -> dict[str, Any]:
    prefix = args.get("versionPrefix") or "1.34."
    return {
        "latestVersion": f"{prefix}5-do.0",
        "validVersions": [f"{prefix}5-do.0", f"{prefix}4-do.0"],
        "versionPrefix": prefix,
    }


def _invoke_kubernetes_cluster(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": args.get("name"),
        "kubeConfigs": [{"rawConfig": FAKE_KUBECONFIG, "token": "offline-fake-token"}],
        "status": "running",
    }


FAKE_INVOKES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "digitalocean:index/getKubernetesVersions:getKubernetesVersions": _invoke_kubernetes_versions,
    "digitalocean:index/getKubernetesCluster:getKubernetesCluster": _invoke_kubernetes_cluster,
}


def _make_mocks(run: Run):
    import pulumi

    class FakeCloud(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs):
            id_ = _fake_id(args.typ, args.name)
            extra = FAKE_OUTPUTS.get(args.typ)
            state = dict(args.inputs)
            if extra:
                state.update(extra(args.name, args.inputs, id_))
            return id_, state

        def call(self, args: pulumi.runtime.MockCallArgs):
            fake = FAKE_INVOKES.get(args.token)
            if fake is None:
                raise LookupError(
                    f"offline engine has no fake for invoke {args.token}; add one to FAKE_INVOKES"
                )
            run.invokes.append((args.token, dict(args.args)))
            return fake(dict(args.args))

    return FakeCloud()


def _make_monitor(mocks, run: Run):
    from pulumi.runtime.mocks import MockMonitor

    class RecordingMonitor(MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                inputs = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
                run.resources.append(
                    Resource(
                        urn=response.urn,
                        type=request.type,
                        name=request.name,
                        parent=request.parent or None,
                        provider=request.provider or None,
                        dependencies=sorted(set(request.dependencies)),
                        protect=bool(request.protect),
                        inputs=plain(inputs),
                        custom=bool(request.custom),
                        remote=bool(request.remote),
                    )
                )
            return response

        def RegisterResourceOutputs(self, request):
            # Only the stack's own outputs (its exports), not those of components under it.
            if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
                outputs = json_format.MessageToDict(
                    request.outputs, preserving_proto_field_name=True
                )
                run.outputs.update(plain(outputs))
            return super().RegisterResourceOutputs(request)

    return RecordingMonitor(mocks)


# --- stack files -----------------------------------------------------------------------------


def _placeholder(key: str) -> str:
    return f"offline-placeholder-for-{key.replace(':', '-').replace('.', '-')}"


def read_stack_config(path: Path) -> tuple[dict[str, str], list[str], list[str]]:
    """Stack file -> (runtime config strings, secret keys, placeholder values used)."""
    doc = yaml.safe_load(path.read_text()) or {}
    config = doc.get("config") or {}
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    placeholders: list[str] = []

    def unseal(value: Any, where: str) -> tuple[Any, bool]:
        if isinstance(value, dict) and set(value) == {"secure"}:
            text = _placeholder(where)
            placeholders.append(text)
            return text, True
        if isinstance(value, dict):
            out, secret = {}, False
            for k, v in value.items():
                out[k], s = unseal(v, f"{where}.{k}")
                secret = secret or s
            return out, secret
        if isinstance(value, list):
            items = [unseal(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v, _ in items], any(s for _, s in items)
        return value, False

    for key, raw in config.items():
        value, secret = unseal(raw, key)
        values[key] = value if isinstance(value, str) else json.dumps(value)
        if secret:
            secret_keys.append(key)
    return values, secret_keys, placeholders


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def run_stack(stack: str, config_file: Path | None = None, preview: bool = False) -> Run:
    """Run `__main__.py` for `stack` offline and return what it registered.

    Raises the program's own exceptions (e.g. `ConfigError`) unchanged."""
    run = attempt(stack, config_file, preview)
    if run.error is not None:
        raise run.error
    return run


def _program(main: str) -> None:
    import pulumi
    from pulumi.runtime import settings as runtime_settings

    runpy.run_path(main, run_name="__main__")
    # `set_mocks` registers the root stack's (empty) outputs before the program runs; register
    # the exports the program made, as the real language host does when the program ends.
    root = runtime_settings.get_root_resource()
    if isinstance(root, pulumi.runtime.stack.Stack):
        root._outputs_registered = False
        root._finish()


def attempt(
    stack: str,
    config_file: Path | None = None,
    preview: bool = False,
    program: Callable[[], Any] | None = None,
) -> Run:
    """Like `run_stack`, but a failure is returned in `Run.error` beside what was registered
    before it, so tests can prove that bad config registers nothing. `program` replaces
    `__main__.py` (component tests register components directly), under the same mocks and
    stack config."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import _sync_await, run_pulumi_func

    path = config_file or stack_file(stack)
    values, secret_keys, placeholders = read_stack_config(path)
    run = Run(stack=stack, secret_values=placeholders)

    runtime_settings.set_root_resource(None)
    pulumi.runtime.set_all_config(values, secret_keys)
    mocks = _make_mocks(run)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=preview, monitor=_make_monitor(mocks, run)
    )
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main = str(ROOT / "__main__.py")
    try:
        _sync_await(run_pulumi_func(program or (lambda: _program(main))))
    except Exception as error:
        run.error = error
    return run
