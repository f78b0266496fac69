"""The one helper for Kubernetes objects we author: the labels every object carries, the shape
of a namespaced object and of a Secret, and the rule that names its Pulumi resource.

Pure (no Pulumi): builders in every concern return these dicts; `resources.register` turns one
into one Pulumi resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMMON_LABELS = {
    "app.kubernetes.io/part-of": "service-mesh",
    "app.kubernetes.io/managed-by": "pulumi",
}


def labels(name: str, **extra: str) -> dict[str, str]:
    """The labels every object we author carries (DESIGN.md conventions)."""
    return {"app.kubernetes.io/name": name, **COMMON_LABELS, **extra}


def slug(host: str) -> str:
    """A host name as a DNS-label-safe name part: 'api.example.com' -> 'api-example-com'."""
    return host.replace(".", "-")


def metadata(
    name: str, namespace: str | None, component: str, **extra_labels: str
) -> dict[str, Any]:
    """`metadata` of an object we author; `component` names the concern in its labels."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(component, **extra_labels)
    return meta


def namespaced(
    kind: str,
    api_version: str,
    name: str,
    namespace: str,
    spec: dict[str, Any],
    component: str,
) -> dict[str, Any]:
    """A namespaced object with a `spec` (Istio, Prometheus Operator, cert-manager kinds)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, namespace, component),
        "spec": spec,
    }


def secret(
    name: str, namespace: str, component: str, string_data: Mapping[str, Any]
) -> dict[str, Any]:
    """An Opaque Secret. Values are Pulumi secret Outputs when registered; the builders never
    see the plain text."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace, component),
        "type": "Opaque",
        "stringData": dict(string_data),
    }


# --- Pulumi resource names ------------------------------------------------------------------
# A Pulumi name is part of the URN, and URNs are an interface (a rename replaces the object
# unless it carries `aliases`). The rule: `<namespace>-<name>` for a namespaced object, its own
# name for a cluster-scoped one; the type token already tells kinds apart. Two families named
# before this rule keep their names (`qualified_name`, and the singletons that pass a literal).


def resource_name(obj: Mapping[str, Any]) -> str:
    """The Pulumi name of an authored object under the rule above."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}-{meta['name']}" if namespace else str(meta["name"])


def qualified_name(obj: Mapping[str, Any]) -> str:
    """`<kind>-<namespace>-<name>`: how the observability layer's objects were first named."""
    return f"{str(obj['kind']).lower()}-{resource_name(obj)}"
