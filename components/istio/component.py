"""Istio control plane from the official charts, pinned: `base` (CRDs, default validator) ->
`istiod-<revision>` (HA, on the tainted system pool) -> ingress and egress gateways. Values in
`values.py` and `gateways.py`; the ingress gateway's Service is the way in's
(`components/edge/gateway.py`), passed in through the args.

Why `helm.v3.Release` and not `helm.v4.Chart`: the Istio charts branch on `.Release.IsUpgrade`
(webhook failurePolicy) and document install/upgrade as Helm releases (canary revisions are
separate releases side by side); v4.Chart renders locally without release state or hooks. A
Release also waits until its workloads are ready, which is what "gateways after istiod is
ready" and "Istio CRs after the CRDs and istiod" mean in the resource graph. The cost, one
preview diff per release instead of per object, is paid back by `tools.plan` writing the values.

The IstioOperator API is not used (removed in Istio 1.24).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.base import mesh, pins
from components.base.resources import release
from components.istio.config import IstioConfig
from components.istio.gateways import egress_gateway_values
from components.istio.values import base_values, istiod_values


@dataclass(frozen=True)
class IstioControlPlaneArgs:
    istio: IstioConfig
    # meshConfig fragments of the security and observability layers, merged into istiod's.
    mesh_config: dict[str, Any]
    trace_sampling_percentage: float  # observability.tracing, istiod's legacy default too
    # The ingress gateway chart's values: the way in's concern (components/edge/gateway.py).
    ingress_gateway_values: dict[str, Any]
    namespaces: Mapping[str, pulumi.Resource]  # istio-system and the gateways' namespaces
    istiod_depends_on: Sequence[pulumi.Resource] = ()  # e.g. the mesh CA's `cacerts` Secret


class IstioControlPlane(pulumi.ComponentResource):
    """base -> istiod -> gateways. `crds_ready` is what every Istio custom resource, in any
    layer, must depend on: the CRDs exist and istiod's validating webhook answers."""

    def __init__(
        self, name: str, args: IstioControlPlaneArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:istio:IstioControlPlane", name, None, opts)
        istio = args.istio
        namespaces = args.namespaces
        system_ns = namespaces[mesh.ROOT_NAMESPACE]

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.base = release(
            "istio-base", pins.ISTIO_BASE, mesh.ROOT_NAMESPACE, base_values(istio), child(system_ns)
        )
        self.istiod = release(
            f"istiod-{istio.revision}",
            pins.ISTIOD,
            mesh.ROOT_NAMESPACE,
            istiod_values(istio, args.mesh_config, args.trace_sampling_percentage),
            child(self.base, system_ns, *args.istiod_depends_on),
        )
        # Gateways get their proxy image injected by istiod: installed once istiod is ready.
        self.ingress_gateway, self.egress_gateway = (
            release(name, pins.ISTIO_GATEWAY, ns, values, child(self.istiod, namespaces[ns]))
            for name, ns, values in (
                (mesh.INGRESS_GATEWAY, mesh.INGRESS_NAMESPACE, args.ingress_gateway_values),
                (
                    mesh.EGRESS_GATEWAY,
                    mesh.EGRESS_NAMESPACE,
                    egress_gateway_values(istio.egress_gateway, istio.revision_tag),
                ),
            )
        )
        self.crds_ready: list[pulumi.Resource] = [self.base, self.istiod]
        self.revision = istio.revision
        self.revision_tag = istio.revision_tag
        self.register_outputs(
            {
                "revision": self.revision,
                "revisionTag": self.revision_tag,
                "istiod": self.istiod.name,
                "ingressGateway": self.ingress_gateway.name,
                "egressGateway": self.egress_gateway.name,
            }
        )
