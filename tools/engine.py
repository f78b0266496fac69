"""Offline engine: runs the real `__main__.py` for a stack under Pulumi's mock engine.

Deterministic fake cloud outputs (documentation IP ranges, fake ids, a fake kubeconfig), remembered
so the plan can label them; `secure:` config values replaced by placeholders and marked secret,
and placeholders supplied for the secrets a stack file without any assumes set
(`OFFLINE_SECRETS`); invokes answered by fakes; every registered resource recorded with its
parent, provider, dependencies, protect flag and inputs. A malformed stack file raises
`StackFileError` (`file:line:column: what`). The plan tool and the tests both use it, so what is
tested is what `pulumi up` runs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import hashlib
import itertools
import json
import runpy
import sys
import threading
from collections.abc import Callable, Iterable
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
    # sha256 of the inputs as sent, secrets included: lets a test compare what a provider or a
    # resource receives across runs without the plan ever showing a secret.
    inputs_digest: str = ""
    # The inputs as sent, secrets kept in the wire's secret envelope with their (offline,
    # placeholder) values, and what the fake cloud answered: what a `pulumi stack export`
    # holds (tools/export.py). Never written to a plan.
    wire_inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    resource_id: str | None = None
    fake_outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False

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
            # Only when set, so that most records stay as they were: `pulumi up` keeps the
            # state's value at these paths, and the review must not report them as changes.
            **({"ignoreChanges": self.ignore_changes} if self.ignore_changes else {}),
            # Only when set: deleting it from the program leaves it in the cloud.
            **({"retainOnDelete": True} if self.retain_on_delete else {}),
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
    # Every string the fake cloud invented (ids, IPs, endpoints, versions, PEMs), and the stack
    # outputs that carry one: the plan labels those so nobody copies a fake as a real value.
    fake_values: set[str] = field(default_factory=set)
    # What the fake cloud answered for the registration in flight, per thread: the engine
    # serves the monitor inline (`_monitor_inline`), but the SDK's own executor would serve it
    # on several threads, where one shared slot would mix registrations up.
    created: threading.local = field(default_factory=threading.local, repr=False)
    wire_outputs: dict[str, Any] = field(default_factory=dict)  # the stack's, secrets kept
    fake_outputs: set[str] = field(default_factory=set)

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

    def waits_for(self, resource: Resource) -> set[str]:
        """Every URN `resource` waits for: its dependencies, theirs, and so on."""
        by_urn = {r.urn: r for r in self.resources}
        seen: set[str] = set()
        todo = list(resource.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += by_urn[urn].dependencies
        return seen


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

# Invented words this short (`running`, `active`) mark a value only when they are all of it.
_FAKE_SUBSTRING_MIN = 10


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _record_fakes(run: Run, invented: Any, given: Any) -> None:
    """Remember the strings in `invented` that are not echoes of the inputs in `given`."""
    echoed = set(_strings(given))
    run.fake_values.update(s for s in _strings(invented) if s and s not in echoed)


def _carries_fake(value: Any, fakes: set[str]) -> bool:
    """Whether a wire value (secrets unwrapped) holds a string the fake cloud invented."""
    if isinstance(value, dict) and value.get(_SIG_KEY) == _SECRET_SIG:
        return _carries_fake(value.get("value"), fakes)
    return any(
        s in fakes or any(len(f) >= _FAKE_SUBSTRING_MIN and f in s for f in fakes)
        for s in _strings(value)
    )


def _fake_id(type_: str, name: str) -> str:
    return hashlib.sha256(f"{type_}::{name}".encode()).hexdigest()[:24]


def _doc_ip(name: str) -> str:
    """An address from TEST-NET-3 (RFC 5737), stable per resource name."""
    return f"203.0.113.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 2}"


def _fake_pem(label: str, name: str) -> str:
    body = hashlib.sha256(f"{label}:{name}".encode()).hexdigest()
    return f"-----BEGIN {label}-----\nOFFLINE{body}\n-----END {label}-----\n"


_TOKENS = itertools.count(1)
FAKE_CLUSTER_CA = "T0ZGTElORS1GQUtFLUNMVVNURVItQ0E="  # base64 of "OFFLINE-FAKE-CLUSTER-CA"


def _fake_kube_config() -> dict[str, Any]:
    """What DOKS returns for a cluster's credentials: a new token on every read (so the test of
    a stable provider can fail the way DigitalOcean would make it fail), the same CA."""
    token = f"offline-fake-token-{next(_TOKENS)}"
    raw = FAKE_KUBECONFIG.replace("offline-fake-token", token)
    return {"rawConfig": raw, "token": token, "clusterCaCertificate": FAKE_CLUSTER_CA}


FakeOutputs = Callable[[str, dict[str, Any], str], dict[str, Any]]

# Per resource type: extra outputs a real provider would compute. Layers add their types here.
FAKE_OUTPUTS: dict[str, FakeOutputs] = {
    "digitalocean:index/vpc:Vpc": lambda n, i, id_: {"vpcUrn": f"do:vpc:{id_}"},
    "digitalocean:index/kubernetesCluster:KubernetesCluster": lambda n, i, id_: {
        "clusterUrn": f"do:kubernetes:{id_}",
        "endpoint": f"https://{id_}.k8s.ondigitalocean.invalid",
        "ipv4Address": _doc_ip(n),
        "status": "running",
        "kubeConfigs": [_fake_kube_config()],
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
    "random:index/randomId:RandomId": lambda n, i, id_: {
        "hex": id_[: 2 * int(i.get("byteLength", 4))],
        "dec": str(int(id_[: 2 * int(i.get("byteLength", 4))], 16)),
    },
    "random:index/randomPassword:RandomPassword": lambda n, i, id_: {
        "result": f"offline-password-{id_}"
    },
    "digitalocean:index/spacesKey:SpacesKey": lambda n, i, id_: {
        "accessKey": f"OFFLINEKEY{id_[:10].upper()}",
        "secretKey": f"offline-spaces-secret-{id_}",
    },
}


# The DOKS versions the fake cloud offers (newest first per minor), like
# `doctl kubernetes options versions`; a minor it does not list gets no version, as from
# DigitalOcean.
FAKE_DOKS_VERSIONS: tuple[str, ...] = (
    "1.36.2-do.0",
    "1.36.1-do.0",
    "1.35.4-do.0",
    "1.35.3-do.0",
    "1.34.5-do.0",
    "1.34.4-do.0",
    "1.33.9-do.0",
)


def _invoke_kubernetes_versions(args: dict[str, Any]) -> dict[str, Any]:
    prefix = args.get("versionPrefix") or ""
    valid = [v for v in FAKE_DOKS_VERSIONS if v.startswith(prefix)]
    return {
        "latestVersion": valid[0] if valid else "",
        "validVersions": valid,
        "versionPrefix": prefix,
    }


def _invoke_kubernetes_cluster(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": args.get("name"),
        "kubeConfigs": [_fake_kube_config()],
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
            run.fake_values.add(id_)
            invented: dict[str, Any] = {}
            if extra:
                invented = extra(args.name, args.inputs, id_)
                _record_fakes(run, invented, args.inputs)
                state.update(invented)
            run.created.value = (id_, invented)
            return id_, state

        def call(self, args: pulumi.runtime.MockCallArgs):
            fake = FAKE_INVOKES.get(args.token)
            if fake is None:
                raise LookupError(
                    f"offline engine has no fake for invoke {args.token}; add one to FAKE_INVOKES"
                )
            run.invokes.append((args.token, dict(args.args)))
            result = fake(dict(args.args))
            _record_fakes(run, result, dict(args.args))
            return result

    return FakeCloud()


def _wire(struct: Any) -> dict[str, Any]:
    """A protobuf Struct as sent, as a dict (secrets still in their envelopes): what
    `json_format.MessageToDict` returns, in the same key order, without its generic field
    dispatch (a third of the recording's time). tests/test_plan_speed.py compares the two."""
    return {key: _wire_value(value) for key, value in struct.fields.items()}


def _wire_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return {k: _wire_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_wire_value(v) for v in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if number != number or number in (float("inf"), float("-inf")):
            # MessageToDict's own refusal: JSON has no NaN or infinity
            return json_format.MessageToDict(value)
        return number
    return None  # null_value, or no value at all


def plain_wire(value: Any) -> bool:
    """Whether a wire value (a Struct as a dict) is nothing but plain data: no secret, unknown,
    resource reference, asset or output value, and no null in a map. The SDK's deserializer
    turns the first into objects (lifting a secret to the enclosing property) and drops the
    last, so only for plain data is its deserialize-then-serialize round trip the identity."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if _SIG_KEY in item or None in item.values():
                return False
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif item == _UNKNOWN_VALUE:
            return False
    return True


def _make_monitor(mocks, run: Run):
    from google.protobuf import struct_pb2
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor, MockResourceArgs, _resolve_callbacks
    from pulumi.runtime.proto import resource_pb2

    class RecordingMonitor(MockMonitor):
        def register_plain(self, request, inputs: dict[str, Any]):
            """`MockMonitor.RegisterResource` for inputs that are plain data (`plain_wire`),
            without its round trip of every input through the SDK's deserializer and
            serializer (a sixth of a large plan): the fake cloud gets the inputs as sent (the
            deserializer's result, for plain data), the answer starts as a copy of them, and
            only what the fake cloud changed is serialized, by the SDK's own serializer.
            tests/test_plan_speed.py proves the answer equal to MockMonitor's for every
            registration of the committed stacks."""
            urn = self.make_urn(request.parent, request.type, request.name)
            args = MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom or False,
                transforms=_resolve_callbacks(request.transforms),
            )
            id_, state = self.mocks.new_resource(args)
            answer = struct_pb2.Struct()
            answer.CopyFrom(request.object)
            for key in inputs.keys() - state.keys():
                del answer[key]
            changed = {k: v for k, v in state.items() if k not in inputs or v is not inputs[k]}
            if changed:
                answer.MergeFrom(_resolved_now(rpc.serialize_properties(changed, {})))
            self.resources[urn] = MockMonitor.ResourceRegistration(urn, id_, state)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=answer)

        def RegisterResource(self, request):
            if request.type == "pulumi:pulumi:Stack":
                return super().RegisterResource(request)
            run.created.value = (None, {})
            inputs = _wire(request.object)
            if plain_wire(inputs):
                response = self.register_plain(request, inputs)
            else:
                response = super().RegisterResource(request)
            resource_id, invented = run.created.value
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
                    ignore_changes=list(request.ignoreChanges),
                    retain_on_delete=bool(request.retainOnDelete),
                    inputs_digest=hashlib.sha256(
                        json.dumps(inputs, sort_keys=True).encode()
                    ).hexdigest(),
                    wire_inputs=inputs,
                    resource_id=resource_id,
                    fake_outputs=invented,
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
                run.wire_outputs.update(outputs)
                run.fake_outputs.update(
                    k for k, v in outputs.items() if _carries_fake(v, run.fake_values)
                )
            return super().RegisterResourceOutputs(request)

    return RecordingMonitor(mocks)


# --- stack files -----------------------------------------------------------------------------

NAMESPACE = f"{PROJECT}:"
_ALL_SECRETS = ("meshCaRootCert", "meshCaRootKey", "alertPagerUrl", "alertTicketUrl", "dnsApiToken")

# The secrets an operator stores with `pulumi config set --secret service-mesh:<key>` (README
# §3), per tier (`components/base/profiles.py`). Committed stack files carry no ciphertext (a
# fake one fails `pulumi preview` with a decryption error far from its cause), so for a stack
# file that holds no secret at all the engine assumes these are set and supplies a marked
# placeholder for each; the plan then exercises every secret path. A file that holds secrets
# (`secure:` values) is taken as written: a secret it lacks is missing, as for `pulumi up`.
# Dev has no alert receivers (optional there).
OFFLINE_SECRETS: dict[str, tuple[str, ...]] = {
    "dev": ("meshCaRootCert", "meshCaRootKey", "dnsApiToken"),
    "staging": _ALL_SECRETS,
    "production": _ALL_SECRETS,
}


class StackFileError(ValueError):
    """A stack file that is not valid YAML or not shaped like a Pulumi stack file. Printed as
    `file:line:column: what is wrong`, like a compiler, so an editor can jump to it."""

    def __init__(self, path: Path, line: int | None, column: int | None, message: str):
        self.path, self.line, self.column, self.message = path, line, column, message
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


def _mark_error(path: Path, mark: Any, message: str) -> StackFileError:
    return StackFileError(path, mark.line + 1, mark.column + 1, message)


def _yaml_error(path: Path, text: str, error: yaml.YAMLError) -> StackFileError:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        message = f"invalid YAML: {error.problem or error.context}"
        if error.context and error.problem and error.context_mark is not None:
            start = error.context_mark
            message += f" ({error.context} at line {start.line + 1}, column {start.column + 1})"
        if "'\\t'" in message:
            message += "; indent with spaces, YAML does not allow tabs"
        return _mark_error(path, error.problem_mark, message)
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        message = f"invalid YAML: character #x{error.character:04x}: {error.reason}"
        return StackFileError(path, line, column, message)
    return StackFileError(path, 1, 1, f"invalid YAML: {error}")


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return f"the scalar {node.value!r}"


class _DuplicateKeys:
    """A loader that refuses a mapping key written twice, at any depth: PyYAML would keep the
    last one silently, so half of a section would vanish without a word."""

    root: yaml.Node | None = None

    def check_duplicates(self, path: Path, node: yaml.Node, where: str = "") -> None:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.check_duplicates(path, item, f"{where}[{i}]")
        if not isinstance(node, yaml.MappingNode):
            return
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                first = seen.setdefault((key.tag, key.value), key)
                if first is not key:
                    name = f"{where}.{key.value}" if where else key.value
                    raise _mark_error(
                        path,
                        key.start_mark,
                        f"key {name!r} is written twice (lines {first.start_mark.line + 1} and "
                        f"{key.start_mark.line + 1}); YAML would keep only the last one: "
                        "merge them into one",
                    )
                # Keys under the top-level `config:` are named as Pulumi names them.
                top = not where and key.value == "config" and node is self.root
                label = "" if top else f"{where}.{key.value}" if where else str(key.value)
            else:
                label = where
            self.check_duplicates(path, value, label)


class _StackLoader(_DuplicateKeys, yaml.SafeLoader):
    """PyYAML's own parser: its messages are the ones a user is shown."""


# libyaml's parser, with PyYAML's resolver and constructor: the same nodes and values, five
# times faster (0.5 s of a 1000-service plan). A file it refuses, or refuses to construct,
# is read again by `_StackLoader`, so a user always gets PyYAML's words and marks. libyaml
# accepts a little more than PyYAML (a differential fuzz found: a tab inside a value or a
# flow collection, `?` inside a flow collection, a byte-order mark inside the text), so a
# file holding any of `_PURE_ONLY` is read by PyYAML alone: the verdict is always PyYAML's.
_FastStackLoader = (
    type("_FastStackLoader", (_DuplicateKeys, yaml.CSafeLoader), {})
    if hasattr(yaml, "CSafeLoader")
    else None
)
_PURE_ONLY = ("\t", "?", "\ufeff")


def _stack_config(path: Path, text: str) -> dict[str, Any]:
    """The constructed `config:` map of a stack file (`{}` when it has none)."""
    if _FastStackLoader is not None and not any(c in text for c in _PURE_ONLY):
        try:
            return _constructed_config(path, text, _FastStackLoader)
        except StackFileError:
            pass  # read again, below, for PyYAML's own message
    return _constructed_config(path, text, _StackLoader)


def _constructed_config(path: Path, text: str, loader_type: type) -> dict[str, Any]:
    loader, node = _config_node(path, text, loader_type)
    try:
        return loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as error:
        raise _yaml_error(path, text, error) from None
    finally:
        loader.dispose()


def _config_node(
    path: Path, text: str, loader_type: type = _StackLoader
) -> tuple[_DuplicateKeys, yaml.Node | None]:
    """The `config:` node of a stack file, after checking the file's shape."""
    try:
        loader = loader_type(text)  # the reader refuses control characters here already
        root = loader.get_single_node()
        if root is None:
            raise StackFileError(
                path, 1, 1, "the stack file is empty; expected `config:` with service-mesh:* keys"
            )
        loader.root = root
        loader.check_duplicates(path, root)
    except yaml.YAMLError as error:
        raise _yaml_error(path, text, error) from None
    if not isinstance(root, yaml.MappingNode):
        raise _mark_error(
            path,
            root.start_mark,
            f"a stack file is a mapping with a `config:` key, found {_kind(root)}",
        )
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "config":
            if isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null":
                return loader, None
            if not isinstance(value, yaml.MappingNode):
                raise _mark_error(
                    path,
                    value.start_mark,
                    f"`config` must be a mapping of `service-mesh:<key>: value`, "
                    f"found {_kind(value)}",
                )
            for item, _ in value.value:
                if not (isinstance(item, yaml.ScalarNode) and item.tag.endswith(":str")):
                    raise _mark_error(
                        path,
                        item.start_mark,
                        f"config keys are strings such as `service-mesh:environment`, "
                        f"found {_kind(item)}",
                    )
            return loader, value
    return loader, None


def _placeholder(key: str) -> str:
    return f"offline-placeholder-for-{key.replace(':', '-').replace('.', '-')}"


def offline_secrets(config: dict[str, Any]) -> tuple[str, ...]:
    """The secret keys (without namespace) the engine assumes set for this stack config: those
    `OFFLINE_SECRETS` lists for the tier of its `service-mesh:environment` (none if that is not
    a declared environment: config validation then says so)."""
    from components.base.profiles import ENVIRONMENTS

    name = config.get(f"{NAMESPACE}environment")
    environment = ENVIRONMENTS.get(name) if isinstance(name, str) else None
    return OFFLINE_SECRETS.get(environment.tier, ()) if environment else ()


def with_offline_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (a stack file's `config:` map) as it reads once the operator has set the
    secrets `offline_secrets` assumes: a `secure:` entry for each it lacks. Tests start from
    this and drop a key to prove that its absence is refused."""
    return {
        **config,
        **{
            NAMESPACE + key: {"secure": "offline-placeholder"}
            for key in offline_secrets(config)
            if NAMESPACE + key not in config
        },
    }


def read_stack_config(
    path: Path, supply_secrets: Iterable[str] | None = None
) -> tuple[dict[str, str], list[str], list[str]]:
    """Stack file -> (runtime config strings, secret keys, placeholder values used).

    Each `secure:` value becomes a unique placeholder marked secret, and so does each secret in
    `supply_secrets` (keys without namespace) the file does not set. By default that is
    `offline_secrets(config)` for a file without any `secure:` value and nothing for one with
    (see `OFFLINE_SECRETS`); `supply_secrets=()` runs any file exactly as written. Raises
    `StackFileError` for a file that is not a well-formed stack file."""
    try:
        text = path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise StackFileError(path, None, None, "is a directory, not a stack file") from None
    except FileNotFoundError:
        raise StackFileError(path, None, None, "no such stack file") from None
    except UnicodeDecodeError as error:
        data = path.read_bytes()
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise StackFileError(path, line, column, "not UTF-8 text") from None
    config = _stack_config(path, text)
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
    if supply_secrets is None:
        supply_secrets = () if placeholders else offline_secrets(config)
    for name in supply_secrets:
        key = NAMESPACE + name
        if key not in config:
            values[key] = _placeholder(key)
            secret_keys.append(key)
            placeholders.append(values[key])
    return values, secret_keys, placeholders


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def run_stack(
    stack: str,
    config_file: Path | None = None,
    preview: bool = False,
    supply_secrets: Iterable[str] | None = None,
) -> Run:
    """Run `__main__.py` for `stack` offline and return what it registered.

    Raises the program's own exceptions (e.g. `ConfigError`) unchanged, and `StackFileError`
    for a stack file that is not well-formed."""
    run = attempt(stack, config_file, preview, supply_secrets=supply_secrets)
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
    supply_secrets: Iterable[str] | None = None,
) -> Run:
    """Like `run_stack`, but a failure is returned in `Run.error` beside what was registered
    before it, so tests can prove that bad config registers nothing. `program` replaces
    `__main__.py` (component tests register components directly), under the same mocks and
    stack config. `supply_secrets` as in `read_stack_config` (`()`: the file as written, for
    tests of a missing secret); a malformed stack file raises `StackFileError`."""
    import pulumi
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.stack import _sync_await, run_pulumi_func

    path = config_file or stack_file(stack)
    values, secret_keys, placeholders = read_stack_config(path, supply_secrets)
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
    finished = False
    try:
        with collector_tuned(), _monitor_inline():
            _sync_await(run_pulumi_func(program or (lambda: _program(main))))
        finished = True
    except Exception as error:
        run.error = error
    finally:
        _cancel_leftover_tasks(finished)
    return run


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once, on the calling thread. The SDK hands every monitor call to the
    event loop's default executor because a real monitor is a gRPC server; the mock monitor
    answers from memory, so a thread per call only added hand-offs and lock convoys (a
    thread pool contending for the interpreter lock at every registration). A subclass of
    the thread pool only because `loop.set_default_executor` accepts nothing else; it starts
    no thread."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # handed to the awaiting task, as from a thread
            future.set_exception(error)
        return future


def _resolved_now(awaitable: Any) -> Any:
    """The mock monitor's `_sync_await(serialize_properties(state))`, on the calling thread:
    the fake cloud's state is plain data, so serializing it never waits for anything and
    the coroutine finishes in one step. Waiting would mean an Output in the fake state."""
    try:
        awaitable.send(None)
    except StopIteration as done:
        return done.value
    awaitable.close()
    raise RuntimeError("offline engine: a fake cloud answer holds an unresolved value")


@contextlib.contextmanager
def _monitor_inline():
    """The mock monitor served on the event loop's own thread, and no stack trace captured per
    resource; both restored afterwards. Only the offline engine's plumbing changes: the
    program, its registrations and what the monitor answers are the same (the plans are
    byte-identical, tests/test_plan_speed.py). The stack trace (`sourcePosition`,
    `stackTrace` in each RegisterResource request) is what the Pulumi CLI uses to point a
    diagnostic at a line of the program; the mock monitor never reads it, and walking the
    Python stack cost a tenth of a 1000-service plan."""
    from pulumi.runtime import mocks
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2
    from pulumi.runtime.sync_await import _ensure_event_loop

    loop = _ensure_event_loop()
    executor = getattr(loop, "_default_executor", None)
    sync_await, stack_trace = mocks._sync_await, sdk_resource._get_stack_trace
    loop.set_default_executor(_InlineExecutor())
    mocks._sync_await = _resolved_now
    sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        mocks._sync_await, sdk_resource._get_stack_trace = sync_await, stack_trace
        loop._default_executor = executor  # set_default_executor refuses None


@contextlib.contextmanager
def collector_tuned():
    """No garbage collection during one run; the collector as it was afterwards. A run
    allocates millions of objects that nearly all live until it ends, so collections walked
    live ones (the full ones the whole heap: 22% of a 1000-service plan; a higher gen0
    threshold still left a third of that). At the end what the run allocated is moved, by a
    freeze and an unfreeze and without being traversed, into the oldest generation, where the
    next full collection reclaims its garbage: otherwise the first young collection after the
    run would walk all of it. Costs a seventh to a fifth more peak memory at 1000 services
    (docs/performance.md)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # someone else's frozen objects stay theirs
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


def _cancel_leftover_tasks(finished: bool) -> None:
    """A failed program can leave Outputs still resolving on the shared event loop; cancel them,
    so that a later run in the same process never sees another run's error. A run that
    finished has awaited all of its own (the SDK waits for every Output it tracks), so the
    loop's tasks are walked only after a failure: the walk visits every task object not yet
    collected, about 0.8 s of a test session."""
    import asyncio

    from pulumi.runtime.settings import SETTINGS
    from pulumi.runtime.sync_await import _ensure_event_loop

    loop = _ensure_event_loop()
    if not finished and not loop.is_running():
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # The runtime keeps every Output's task for the end-of-program wait, across `set_mocks`:
    # forget this run's, or the next run would await (and re-raise) them.
    with SETTINGS.lock:
        SETTINGS.outputs.clear()
