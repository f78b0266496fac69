"""Platform namespaces: Istio's (istio-system, istio-ingress, istio-egress), cert-manager's, and
every application namespace declared in `meshNamespaces`.

Namespaces that run sidecars or gateways select the control plane through the revision *tag*
(`istio.io/rev: <tag>`), never `istio-injection`, so a canary upgrade moves them by moving the
tag. Everything istiod must see carries `mesh.DISCOVERY_LABEL` (meshConfig.discoverySelectors).
The `monitoring` namespace belongs to the observability layer. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from components.base import manifests, mesh

GATEWAY_NAMESPACES = (mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE)


def namespace_labels(
    name: str, mesh_namespaces: Collection[str], revision_tag: str
) -> dict[str, str]:
    """Labels of one platform namespace (see module docstring for the rules)."""
    labels = manifests.labels(name)
    meshed = name in GATEWAY_NAMESPACES or name in mesh_namespaces
    if meshed:
        labels[mesh.REVISION_LABEL] = revision_tag
    if meshed or name == mesh.ROOT_NAMESPACE:
        # istiod must also see its root namespace, where mesh-wide policies live.
        labels.update(mesh.DISCOVERY_LABEL)
    return labels


def namespace_names(mesh_namespaces: Collection[str]) -> list[str]:
    return [
        mesh.ROOT_NAMESPACE,
        *GATEWAY_NAMESPACES,
        mesh.CERT_MANAGER_NAMESPACE,
        *mesh_namespaces,
    ]


def namespace_manifest(
    name: str, mesh_namespaces: Collection[str], revision_tag: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": namespace_labels(name, mesh_namespaces, revision_tag)},
    }
