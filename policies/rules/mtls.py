"""Mutual TLS: STRICT for the whole mesh, plaintext (PERMISSIVE) only where an exception with a
reason is granted, never DISABLE.

A PeerAuthentication in Istio's root namespace without a selector is the mesh-wide default, and
a mesh-wide policy without a mode means PERMISSIVE; so the rule wants one, explicitly STRICT.
A namespace or workload policy may relax it: that is what lets a stack migrate a namespace into
the mesh, and what a bad merge or a copied example does by accident.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components.base import mesh
from policies.rules.base import (
    STACK,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    is_mapping,
    message,
    namespace,
    obj_name,
    of_kind,
)
from policies.rules.helm import charts

WHY = (
    "plaintext traffic carries no workload identity, so authorization cannot tell callers "
    "apart and anyone on the network can read or forge it."
)


def root_namespace(resources: Sequence[Any]) -> str:
    """Istio's root namespace: istiod's `meshConfig.rootNamespace`, else istio-system."""
    for c in charts(resources, "istiod"):
        configured = dig(c.values, "meshConfig", "rootNamespace")
        if configured:
            return str(configured)
    return mesh.ROOT_NAMESPACE


def _has_selector(pa: Any) -> bool:
    selector = dig(pa.props, "spec", "selector", "matchLabels")
    return bool(selector) or bool(dig(pa.props, "spec", "targetRef"))


def _modes(pa: Any) -> list[tuple[str, str]]:
    """(where, mode) of the policy itself and of each port it overrides."""
    out = [("", str(dig(pa.props, "spec", "mtls", "mode", default="UNSET")))]
    ports = dig(pa.props, "spec", "portLevelMtls", default={})
    if is_mapping(ports):
        for port in ports:
            out.append((f" port {port}", str(dig(ports, port, "mode", default="UNSET"))))
    return out


def check(resources: Sequence[Any], config: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    root = root_namespace(resources)
    pas = of_kind(resources, "security.istio.io", "PeerAuthentication")
    mesh_wide = [pa for pa in pas if namespace(pa) == root and not _has_selector(pa)]
    if not mesh_wide:
        yield (
            None,
            message(
                f"no mesh-wide PeerAuthentication (in {root}, without a selector)",
                "without one every workload accepts plaintext (Istio's default is PERMISSIVE); "
                + WHY,
                f"add PeerAuthentication `default` in {root} with spec.mtls.mode STRICT",
            ),
        )
    for pa in pas:
        ns, name = namespace(pa), obj_name(pa)
        label = f"PeerAuthentication {ns}/{name}"
        if pa in mesh_wide:
            mode = _modes(pa)[0][1]
            if mode != "STRICT":
                yield (
                    pa.urn,
                    message(
                        f"mesh-wide {label} sets mtls mode {mode}, not STRICT",
                        "the root namespace's policy is the default of every workload; " + WHY,
                        "set spec.mtls.mode: STRICT; relax single namespaces with an exception",
                    ),
                )
            continue
        for port, mode in _modes(pa):
            if mode == "DISABLE":
                yield (
                    pa.urn,
                    message(
                        f"{label}{port} sets mtls mode DISABLE",
                        "DISABLE refuses mutual TLS even from sidecars; " + WHY,
                        "use PERMISSIVE (plaintext accepted beside mTLS) with a granted exception",
                    ),
                )
            elif mode == "PERMISSIVE" and not excepted(config, ns, f"{ns}/{name}"):
                yield (
                    pa.urn,
                    message(
                        f"{label}{port} accepts plaintext (PERMISSIVE) without a granted exception",
                        WHY,
                        f"declare the namespace as migrating (`meshNamespaces: [{{name: {ns}, "
                        "mtls: permissive, permissiveException: ...}]`) and grant the exception "
                        f'in the stack\'s policy config: "mtls-strict": {{"exceptions": '
                        f'{{"{ns}": "<why, until when>"}}}}; or set STRICT',
                    ),
                )


RULES = [
    Rule(
        name="mtls-strict",
        description=(
            "Mesh traffic is mutual TLS: STRICT mesh-wide, PERMISSIVE only in namespaces with a "
            "granted exception, never DISABLE."
        ),
        kind=STACK,
        check=check,
        remediation=(
            "Keep `PeerAuthentication default` in istio-system STRICT; for a namespace being "
            "migrated into the mesh grant an exception in policies/config/<stack>.json."
        ),
        config={"exceptions": exceptions_schema("namespace, or namespace/PeerAuthentication")},
        severity="critical",
        exception_key="namespace, or namespace/PeerAuthentication name",
    )
]
