"""Default deny in every mesh namespace: an AuthorizationPolicy that allows nothing (so only
declared callers get in) and a NetworkPolicy that denies all ingress and egress (so a pod
without a sidecar, or a sidecar bypassed, is still fenced in at layer 3/4).

A mesh namespace is one labelled for sidecar injection (`istio.io/rev`, or
`istio-injection: enabled`) that is not a platform namespace: the gateways' namespaces are
fenced by their own policies (the ingress gateway must accept the internet).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components.base import mesh
from policies.rules.base import (
    CORE,
    STACK,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    is_mapping,
    items,
    labels,
    message,
    namespace,
    obj_name,
    of_kind,
)

PLATFORM_NAMESPACES = [mesh.ROOT_NAMESPACE, mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE]


def mesh_namespaces(resources: Sequence[Any], platform: Sequence[str]) -> list[tuple[str, Any]]:
    """(name, resource) of every injected namespace that is not a platform namespace."""
    out = []
    for ns in of_kind(resources, CORE, "Namespace"):
        found = labels(ns)
        injected = mesh.REVISION_LABEL in found or found.get("istio-injection") == "enabled"
        name = obj_name(ns)
        if injected and name not in platform:
            out.append((name, ns))
    return out


def _empty_selector(selector: Any) -> bool:
    return not (dig(selector, "matchLabels") or dig(selector, "matchExpressions"))


def default_deny_authorization(policy: Any) -> bool:
    """ALLOW with no rules matches nothing; DENY with one empty rule matches everything."""
    spec = dig(policy.props, "spec", default={})
    if dig(spec, "selector", "matchLabels") or dig(spec, "targetRef") or dig(spec, "targetRefs"):
        return False
    action = str(dig(spec, "action", default="ALLOW"))
    rules = items(dig(spec, "rules"))
    if action == "ALLOW":
        return not rules
    return action == "DENY" and any(is_mapping(r) and not r for r in rules)


def default_deny_network(policy: Any) -> set[str]:
    """The directions ('Ingress', 'Egress') a NetworkPolicy denies for every pod."""
    spec = dig(policy.props, "spec", default={})
    if not _empty_selector(dig(spec, "podSelector", default={})):
        return set()
    types = {str(t) for t in items(dig(spec, "policyTypes"))} or {"Ingress"}
    return {t for t in types if not items(dig(spec, t.lower()))}


WHY_AUTHZ = (
    "without an allow-nothing policy every workload without its own ALLOW policy accepts any "
    "authenticated caller in the mesh."
)
WHY_NETWORK = (
    "authorization runs in the sidecar; a pod without one (or a bypass of it) is only fenced "
    "by NetworkPolicies."
)


def check(resources: Sequence[Any], config: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    platform = list(config.get("platformNamespaces") or PLATFORM_NAMESPACES)
    authz = of_kind(resources, "security.istio.io", "AuthorizationPolicy")
    netpol = of_kind(resources, "networking.k8s.io", "NetworkPolicy")
    for name, ns in mesh_namespaces(resources, platform):
        if excepted(config, name):
            continue
        if not any(namespace(p) == name and default_deny_authorization(p) for p in authz):
            yield (
                ns.urn,
                message(
                    f"mesh namespace {name} has no default-deny AuthorizationPolicy",
                    WHY_AUTHZ,
                    f"add AuthorizationPolicy allow-nothing in {name} with an empty spec (the "
                    "security layer does this for every entry of `meshNamespaces`)",
                ),
            )
        denied: set[str] = set()
        for p in netpol:
            if namespace(p) == name:
                denied |= default_deny_network(p)
        missing = sorted({"Ingress", "Egress"} - denied)
        if missing:
            yield (
                ns.urn,
                message(
                    f"mesh namespace {name} has no default-deny NetworkPolicy for "
                    f"{' and '.join(missing)}",
                    WHY_NETWORK,
                    f"add NetworkPolicy default-deny in {name}: podSelector {{}}, policyTypes "
                    "[Ingress, Egress] and no rules; allow what is needed in other policies",
                ),
            )


RULES = [
    Rule(
        name="namespace-default-deny",
        description=(
            "Every mesh namespace has a default-deny AuthorizationPolicy and a default-deny "
            "NetworkPolicy (ingress and egress)."
        ),
        kind=STACK,
        check=check,
        remediation="Declare the namespace in `meshNamespaces`: the security layer adds both.",
        config={
            "platformNamespaces": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Injected namespaces that run the platform, not applications.",
                "default": PLATFORM_NAMESPACES,
            },
            "exceptions": exceptions_schema("namespace"),
        },
        severity="high",
        exception_key="namespace",
    )
]
