"""Istio control plane from the official charts, pinned: `base` (CRDs, default validator) ->
one `istiod-<revision>` per control plane in `istio.revisions` (HA, on the tainted system pool)
-> each revision's tags (a webhook and a Service per tag, authored in `tags.py`) -> ingress and
egress gateways, each on the control plane it selects, and an optional ingress gateway canary.
Values in `values.py` and `gateways.py`; the ingress gateway's Service is the way in's
(`components/edge/gateway.py`), passed in through the args.

Why `helm.v3.Release` and not `helm.v4.Chart`: the Istio charts branch on `.Release.IsUpgrade`
(webhook failurePolicy) and document install/upgrade as Helm releases (canary revisions are
separate releases side by side); v4.Chart renders locally without release state or hooks. A
Release also waits until its workloads are ready, which is what "gateways after istiod is
ready" and "Istio CRs after the CRDs and istiod" mean in the resource graph. The cost, one
preview diff per release instead of per object, is paid back by `tools.plan` writing the values.
Revision tags are not rendered by any release: they are typed resources with fixed names, so a
tag moving between revisions is an in-place update of one URN (`tags.py`).

The IstioOperator API is not used (removed in Istio 1.24).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.base import manifests, mesh, pins
from components.base.resources import register, release
from components.istio.config import IstioConfig
from components.istio.gateways import INGRESS_CANARY, egress_gateway_values, ingress_canary_values
from components.istio.tags import tag_objects
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
    """base -> istiod per revision -> its tags -> gateways. `crds_ready` is what every Istio
    custom resource, in any layer, must depend on: the CRDs exist and the default validator's
    istiod answers. `mesh_injector` is what every pod injected through the mesh's revision tag
    must wait for (`injector`)."""

    def __init__(
        self, name: str, args: IstioControlPlaneArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:istio:IstioControlPlane", name, None, opts)
        istio = args.istio
        namespaces = args.namespaces
        system_ns = namespaces[mesh.ROOT_NAMESPACE]

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        # CRDs are shared by every revision: the base chart is never older than an istiod, and
        # every istiod waits for it (so a new version's CRDs are in before its istiod).
        self.base = release(
            "istio-base",
            pins.istio_chart("base", istio.base_chart_version),
            mesh.ROOT_NAMESPACE,
            base_values(istio),
            child(system_ns),
        )
        self.istiods: dict[str, k8s.helm.v3.Release] = {}
        self.tags: dict[str, list[pulumi.Resource]] = {}
        for revision in istio.revisions:
            istiod = release(
                f"istiod-{revision.name}",
                pins.istio_chart("istiod", revision.version),
                mesh.ROOT_NAMESPACE,
                istiod_values(istio, revision, args.mesh_config, args.trace_sampling_percentage),
                child(self.base, system_ns, *args.istiod_depends_on),
            )
            self.istiods[revision.name] = istiod
            # A tag's objects wait for the istiod they point at (its webhook must answer).
            for tag in revision.tags:
                self.tags[tag] = [
                    register(manifests.resource_name(obj), obj, child(istiod))
                    for obj in tag_objects(tag, revision.name)
                ]

        def gateway(
            name: str, ns: str, ref: str, values: dict[str, Any], *after: pulumi.Resource
        ) -> k8s.helm.v3.Release:
            # Its proxy image is injected by the istiod its revision selects: installed once
            # that istiod and the webhook serving `ref` are ready, at that control plane's
            # chart version.
            target = istio.holder(ref)
            if target is None:  # config checks refuse this; never register a half graph
                raise LookupError(f"{name}: no installed revision for {ref!r}")
            return release(
                name,
                pins.istio_chart("gateway", target.version),
                ns,
                values,
                child(self.istiods[target.name], namespaces[ns], *self.injector(ref), *after),
            )

        self.ingress_gateway = gateway(
            mesh.INGRESS_GATEWAY,
            mesh.INGRESS_NAMESPACE,
            istio.ingress_revision,
            args.ingress_gateway_values,
        )
        self.egress_gateway = gateway(
            mesh.EGRESS_GATEWAY,
            mesh.EGRESS_NAMESPACE,
            istio.egress_revision,
            egress_gateway_values(istio),
        )
        self.ingress_canary: k8s.helm.v3.Release | None = None
        if istio.ingress_gateway_canary is not None:
            canary = istio.ingress_gateway_canary
            # After the primary: it runs as the primary's ServiceAccount, behind its Service.
            self.ingress_canary = gateway(
                INGRESS_CANARY,
                mesh.INGRESS_NAMESPACE,
                canary.revision,
                ingress_canary_values(args.ingress_gateway_values, canary),
                self.ingress_gateway,
            )
        # The default validator (base chart) calls the default revision's istiod.
        self.istiod = self.istiods[istio.default_revision]
        self.crds_ready: list[pulumi.Resource] = [self.base, self.istiod]
        self.mesh_injector = self.injector(istio.revision_tag)
        self.revision = istio.revision
        self.revision_tag = istio.revision_tag
        self.register_outputs(
            {
                "revisions": list(self.istiods),
                "defaultRevision": istio.default_revision,
                "revisionTag": self.revision_tag,
                "istiod": {rev: r.name for rev, r in self.istiods.items()},
                "ingressGateway": self.ingress_gateway.name,
                "egressGateway": self.egress_gateway.name,
            }
        )

    def injector(self, ref: str) -> list[pulumi.Resource]:
        """What must exist before a pod labelled `istio.io/rev: <ref>` is created. A pod
        admitted before its injector's webhook exists starts without a proxy, and a gateway
        (image `auto`) never starts at all. For a tag that is the tag's objects, which are
        registered after istiod in parallel with everything else waiting on istiod. For a
        revision it is its istiod release, whose chart renders the revision's own webhook."""
        if ref in self.tags:
            return list(self.tags[ref])
        if ref in self.istiods:
            return [self.istiods[ref]]
        raise LookupError(f"no installed revision or tag {ref!r} (config was not checked)")
