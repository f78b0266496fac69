"""`PlatformNamespaces`: one Kubernetes `Namespace` per platform and mesh namespace."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.graph.namespaces import namespace_manifest, namespace_names


@dataclass(frozen=True)
class PlatformNamespacesArgs:
    mesh_namespaces: tuple[str, ...]  # declared application namespaces
    # `istio.io/rev` of each gateway and mesh namespace (None: none): IstioConfig.rev_labels
    rev_labels: Mapping[str, str | None]


class PlatformNamespaces(pulumi.ComponentResource):
    """One `Namespace` per platform/mesh namespace; `.by_name` for other layers' depends_on."""

    by_name: Mapping[str, k8s.core.v1.Namespace]

    def __init__(
        self, name: str, args: PlatformNamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:namespaces:PlatformNamespaces", name, None, opts)
        created: dict[str, k8s.core.v1.Namespace] = {}
        for ns in namespace_names(args.mesh_namespaces):
            body = namespace_manifest(ns, args.mesh_namespaces, args.rev_labels)
            created[ns] = k8s.core.v1.Namespace(
                f"ns-{ns}", metadata=body["metadata"], opts=pulumi.ResourceOptions(parent=self)
            )
        self.by_name = created
        self.register_outputs({"namespaces": list(created)})
