"""Platform namespaces: Istio's (istio-system, istio-ingress, istio-egress), cert-manager's, and
every application namespace declared in `meshNamespaces`.

Namespaces that run sidecars or gateways select their control plane with `istio.io/rev`, never
`istio-injection`: mesh namespaces carry the mesh's revision *tag* (or their own override), so a
canary upgrade moves them by moving the tag; gateway namespaces carry their gateway's revision
(none while a gateway canary runs there). The values come from the Istio config
(`IstioConfig.rev_labels`). Everything istiod must see carries `mesh.DISCOVERY_LABEL`
(meshConfig.discoverySelectors). The `monitoring` namespace belongs to the observability layer.
Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from components.base import manifests, mesh

GATEWAY_NAMESPACES = (mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE)


def namespace_labels(
    name: str, mesh_namespaces: Collection[str], rev_labels: Mapping[str, str | None]
) -> dict[str, str]:
    """Labels of one platform namespace (see module docstring for the rules). `rev_labels`
    holds the `istio.io/rev` of every gateway and mesh namespace (None: no label)."""
    labels = manifests.labels(name)
    meshed = name in GATEWAY_NAMESPACES or name in mesh_namespaces
    if meshed and (rev := rev_labels[name]) is not None:
        labels[mesh.REVISION_LABEL] = rev
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
    name: str, mesh_namespaces: Collection[str], rev_labels: Mapping[str, str | None]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": namespace_labels(name, mesh_namespaces, rev_labels)},
    }
