"""What every rule shares: the `Rule` declaration, the message shape (what is wrong, why it
matters, how to fix it), the exception map every policy accepts, and read-only accessors for
the objects a preview sends (Kubernetes objects, hosts; Helm charts are in `helm.py`).

Properties arrive as `pulumi_policy` proxies: `Mapping`/`Sequence`, not dict/list, numbers as
floats, secrets as plaintext without a marker, and an unknown value (not known at preview)
raises `UnknownValueError` when read. Accessors here let that error propagate, so a rule that
needs a value the preview cannot know is reported by the analyzer as "can't run policy"
(advisory) instead of guessing; only `walk` skips unknowns, for scans where an unknown value
cannot be the literal being looked for. No message ever quotes a property value that could be
a secret: messages name keys, kinds, names, namespaces, hosts, versions and modes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from components.base import mesh

RESOURCE = "resource"
STACK = "stack"

# A resource check yields messages; a stack check yields (urn or None for the stack, message).
ResourceCheck = Callable[[Any, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[Any], Mapping[str, Any]], Iterable[tuple[str | None, str]]]


@dataclass(frozen=True)
class Rule:
    """One policy of the pack: `check` is pure; `pack.py` wraps it for the analyzer."""

    name: str
    description: str
    kind: str  # RESOURCE or STACK
    check: ResourceCheck | StackCheck
    remediation: str
    # JSON-schema properties of the policy's config (the CLI fills `default`s and validates).
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    severity: str = "high"
    # What an entry of `exceptions` is keyed by, for docs/policy.md and the schema description.
    exception_key: str = ""


def exceptions_schema(key: str) -> dict[str, Any]:
    """The `exceptions` property every policy takes: key -> the reason it is granted."""
    return {
        "type": "object",
        "description": f"Granted exceptions: {key} -> the reason (at least 10 characters).",
        "additionalProperties": {"type": "string", "minLength": 10},
        "default": {},
    }


def excepted(config: Mapping[str, Any], *keys: str) -> bool:
    """Whether one of `keys` has a granted exception with a stated reason."""
    granted = config.get("exceptions") or {}
    return any(isinstance(granted.get(k), str) and granted[k].strip() for k in keys)


def message(what: str, why: str, fix: str) -> str:
    """A violation: what is wrong, why it matters, what to do."""
    return f"{what}. Why: {why} Fix: {fix}"


# --- reading proxies -------------------------------------------------------------------------


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def dig(value: Any, *keys: str | int, default: Any = None) -> Any:
    """`value[k1][k2]...`, or `default` where a level is missing or of the wrong shape. An
    unknown value raises `UnknownValueError` (the analyzer reports it as "can't run")."""
    for key in keys:
        if isinstance(key, int):
            if not is_list(value) or not -len(value) <= key < len(value):
                return default
        elif not is_mapping(value) or key not in value:
            return default
        value = value[key]
    return default if value is None else value


def items(value: Any) -> list[Any]:
    """A list property as a Python list (empty when absent or not a list)."""
    return list(value) if is_list(value) else []


def walk(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) below `value`, depth first, skipping values unknown at preview (a
    scan for literals cannot find one in a value the program has not computed yet)."""
    if is_mapping(value):
        for key in list(value):
            try:
                child = value[key]
            except UnknownValueError:
                continue
            yield (*path, str(key)), child
            yield from walk(child, (*path, str(key)))
    elif is_list(value):
        for index in range(len(value)):
            try:
                child = value[index]
            except UnknownValueError:
                continue
            yield (*path, str(index)), child
            yield from walk(child, (*path, str(index)))


def dotted(path: Iterable[str]) -> str:
    return ".".join(path)


def number(value: Any) -> int | float | None:
    """A count as the wire sends it (a float) as an int where it is integral."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else value


# --- Kubernetes objects ----------------------------------------------------------------------

_K8S_TYPE = re.compile(r"^kubernetes:(?P<group>[^/:]+)/(?P<version>[^:]+):(?P<kind>.+)$")
CORE = "core"


def k8s_type(resource_type: str) -> tuple[str, str] | None:
    """`kubernetes:networking.istio.io/v1:VirtualService` -> ('networking.istio.io',
    'VirtualService'); core objects have group 'core'. Any version: v1beta1 objects (what
    Flagger writes) are held to the same rules as v1."""
    m = _K8S_TYPE.match(resource_type)
    return (m["group"], m["kind"]) if m else None


def is_kind(resource: Any, group: str, kind: str) -> bool:
    return k8s_type(resource.resource_type) == (group, kind)


def meta(resource: Any, key: str, default: Any = None) -> Any:
    return dig(resource.props, "metadata", key, default=default)


def namespace(resource: Any) -> str:
    """The object's namespace (the provider's default namespace is `default`)."""
    return str(meta(resource, "namespace") or "default")


def obj_name(resource: Any) -> str:
    """metadata.name, or the Pulumi name when the provider will autoname it."""
    return str(meta(resource, "name") or resource.name)


def where(resource: Any) -> str:
    """`<Kind> <namespace>/<name>` for messages."""
    kind = (k8s_type(resource.resource_type) or ("", resource.resource_type))[1]
    return f"{kind} {namespace(resource)}/{obj_name(resource)}"


def labels(resource: Any) -> Mapping[str, Any]:
    found = meta(resource, "labels")
    return found if is_mapping(found) else {}


def of_kind(resources: Iterable[Any], group: str, kind: str) -> list[Any]:
    return [r for r in resources if is_kind(r, group, kind)]


# --- hosts -----------------------------------------------------------------------------------

CLUSTER_SUFFIX = f".svc.{mesh.TRUST_DOMAIN}"


def fqdn(host: str, ns: str) -> str:
    """A host as Istio resolves it for an object in `ns`: a short name gets the namespace and
    cluster suffix ('checkout' -> 'checkout.shop.svc.cluster.local')."""
    host = host.strip().lower()
    if host and "." not in host and "*" not in host:
        return f"{host}.{ns}{CLUSTER_SUFFIX}"
    return host


def in_cluster(host: str) -> bool:
    return host.endswith(CLUSTER_SUFFIX)


def host_namespace(host: str) -> str | None:
    """The namespace of an in-cluster FQDN (`svc.ns.svc.cluster.local` -> 'ns')."""
    if not in_cluster(host):
        return None
    parts = host[: -len(CLUSTER_SUFFIX)].split(".")
    return parts[-1] if len(parts) >= 2 else None
