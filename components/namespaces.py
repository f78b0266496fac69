"""Platform namespaces: Istio's (istio-system, istio-ingress, istio-egress), cert-manager's, and
every application namespace declared in `meshNamespaces`.

Namespaces that run sidecars or gateways select the control plane through the revision *tag*
(`istio.io/rev: <tag>`), never `istio-injection`, so a canary upgrade moves them by moving the
tag. Everything istiod must see carries `mesh.DISCOVERY_LABEL` (meshConfig.discoverySelectors).
The `monitoring` namespace belongs to the observability layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from components import mesh

if TYPE_CHECKING:
    from components.config import PlatformConfig

GATEWAY_NAMESPACES = (mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE)


def namespace_labels(name: str, cfg: PlatformConfig) -> dict[str, str]:
    """Labels of one platform namespace (see module docstring for the rules)."""
    labels = mesh.labels(name)
    meshed = name in GATEWAY_NAMESPACES or name in {ns.name for ns in cfg.mesh_namespaces}
    if meshed:
        labels[mesh.REVISION_LABEL] = cfg.istio.revision_tag
    if meshed or name == mesh.ROOT_NAMESPACE:
        # istiod must also see its root namespace, where mesh-wide policies live.
        labels.update(mesh.DISCOVERY_LABEL)
    return labels


def namespace_names(cfg: PlatformConfig) -> list[str]:
    return [
        mesh.ROOT_NAMESPACE,
        *GATEWAY_NAMESPACES,
        mesh.CERT_MANAGER_NAMESPACE,
        *(ns.name for ns in cfg.mesh_namespaces),
    ]


def namespace_manifest(name: str, cfg: PlatformConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": namespace_labels(name, cfg)},
    }


class PlatformNamespaces(pulumi.ComponentResource):
    """One `Namespace` per platform/mesh namespace; `.get(name)` for other layers' depends_on."""

    def __init__(self, name: str, cfg: PlatformConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("service-mesh:namespaces:PlatformNamespaces", name, None, opts)
        self._namespaces: dict[str, k8s.core.v1.Namespace] = {}
        for ns in namespace_names(cfg):
            body = namespace_manifest(ns, cfg)
            self._namespaces[ns] = k8s.core.v1.Namespace(
                f"ns-{ns}",
                metadata=body["metadata"],
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"namespaces": list(self._namespaces)})

    def get(self, name: str) -> k8s.core.v1.Namespace:
        try:
            return self._namespaces[name]
        except KeyError:
            raise KeyError(
                f"namespace {name!r} is not created by PlatformNamespaces "
                f"(it creates: {', '.join(self._namespaces)})"
            ) from None

    @property
    def names(self) -> list[str]:
        return list(self._namespaces)
