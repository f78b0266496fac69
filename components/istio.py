"""Istio control plane from the official charts, pinned: `base` (CRDs, default validator) ->
`istiod-<revision>` (HA, on the tainted system pool) -> ingress and egress gateways
(`gateways.py`).

Why `helm.v3.Release` and not `helm.v4.Chart`: the Istio charts branch on `.Release.IsUpgrade`
(webhook failurePolicy) and document install/upgrade as Helm releases (canary revisions are
separate releases side by side); v4.Chart renders locally without release state or hooks. A
Release also waits until its workloads are ready, which is what "gateways after istiod is
ready" and "Istio CRs after the CRDs and istiod" mean in the resource graph. The cost, one
preview diff per release instead of per object, is paid back by `tools.plan` writing the values.

The IstioOperator API is not used (removed in Istio 1.24).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from components import charts, mesh
from components.cluster import SYSTEM_POOL_LABEL, SYSTEM_POOL_TAINT
from components.gateways import egress_gateway_values, ingress_gateway_values
from components.workload import Workload, spread

if TYPE_CHECKING:
    from components.config import PlatformConfig
    from components.namespaces import PlatformNamespaces

ISTIO_VERSION = "1.30.3"
ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; lists and scalars in `override` replace."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def replica_values(workload: Workload) -> dict[str, Any]:
    """istiod chart: with the HPA on, `replicaCount` is ignored and autoscaleMin governs."""
    if workload.autoscaled:
        return {
            "autoscaleEnabled": True,
            "autoscaleMin": workload.min_replicas,
            "autoscaleMax": workload.max_replicas,
        }
    return {"autoscaleEnabled": False, "replicaCount": workload.min_replicas}


def system_pool_toleration() -> dict[str, str]:
    return {
        "key": SYSTEM_POOL_TAINT["key"],
        "operator": "Equal",
        "value": SYSTEM_POOL_TAINT["value"],
        "effect": SYSTEM_POOL_TAINT["effect"],
    }


def base_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Base chart: CRDs, and the default validator pointed at our revision's istiod."""
    return {
        "defaultRevision": cfg.istio.revision,
        # Fail closed from the first install (the chart would render Ignore and let istiod
        # flip it): Istio CRs wait for istiod in the graph, so nothing is refused by accident.
        "base": {"validationFailurePolicy": "Fail"},
    }


def mesh_config_values(cfg: PlatformConfig) -> dict[str, Any]:
    """This layer's meshConfig: JSON access logs, discovery limited to labelled namespaces,
    applications start only once their sidecar is ready."""
    return {
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "JSON",
        "enablePrometheusMerge": True,
        "discoverySelectors": [{"matchLabels": dict(mesh.DISCOVERY_LABEL)}],
        "defaultConfig": {"holdApplicationUntilProxyStarts": True},
    }


def istiod_pod_labels(cfg: PlatformConfig) -> dict[str, str]:
    """Labels the chart selects istiod pods by when a revision is set (its Deployment and PDB
    selector), so the spread counts exactly this revision's pods."""
    return {"app": "istiod", mesh.REVISION_LABEL: cfg.istio.revision}


def istiod_values(cfg: PlatformConfig, mesh_config: dict[str, Any]) -> dict[str, Any]:
    """istiod chart values. `mesh_config` (from the security and observability layers) is
    deep-merged into meshConfig; its lists replace ours."""
    istio = cfg.istio
    istiod = istio.istiod
    return {
        "revision": istio.revision,
        "revisionTags": [istio.revision_tag],
        **replica_values(istiod),
        "pdb": istiod.pdb.helm(),
        "resources": istiod.resources.helm(),
        "nodeSelector": dict(SYSTEM_POOL_LABEL),
        "tolerations": [system_pool_toleration()],
        "topologySpreadConstraints": spread(istiod_pod_labels(cfg), hard=True),
        # One sampling setting for the mesh: the Telemetry resource's percentage; istiod's
        # legacy default (a percentage too: 1.0 means 1%) is kept equal to it.
        "traceSampling": cfg.observability.tracing.sampling_percentage,
        "meshConfig": deep_merge(mesh_config_values(cfg), mesh_config),
        "base": {"validationFailurePolicy": "Fail"},
        "global": {
            "logAsJson": istio.log_as_json,
            "defaultPodDisruptionBudget": {"enabled": True},
            "proxy": {"resources": istio.proxy.helm()},
        },
    }


def release(
    name: str, chart: str, namespace: str, values: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.helm.v3.Release:
    """An Istio chart at the pinned Istio version."""
    return charts.release(
        name, chart, namespace, values, opts, version=ISTIO_VERSION, repository=ISTIO_REPOSITORY
    )


class IstioControlPlane(pulumi.ComponentResource):
    """base -> istiod -> gateways. `crds_ready` is what every Istio custom resource, in any
    layer, must depend on: the CRDs exist and istiod's validating webhook answers."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        namespaces: PlatformNamespaces,
        *,
        mesh_config: dict[str, Any],
        istiod_depends_on: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:istio:IstioControlPlane", name, None, opts)
        system_ns = namespaces.get(mesh.ROOT_NAMESPACE)

        def child(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

        self.base = release(
            "istio-base", "base", mesh.ROOT_NAMESPACE, base_values(cfg), child(system_ns)
        )
        self.istiod = release(
            f"istiod-{cfg.istio.revision}",
            "istiod",
            mesh.ROOT_NAMESPACE,
            istiod_values(cfg, mesh_config),
            child(self.base, system_ns, *istiod_depends_on),
        )
        # Gateways get their proxy image injected by istiod: installed once istiod is ready.
        self.ingress_gateway, self.egress_gateway = (
            release(name, "gateway", ns, values, child(self.istiod, namespaces.get(ns)))
            for name, ns, values in (
                (mesh.INGRESS_GATEWAY, mesh.INGRESS_NAMESPACE, ingress_gateway_values(cfg)),
                (mesh.EGRESS_GATEWAY, mesh.EGRESS_NAMESPACE, egress_gateway_values(cfg)),
            )
        )
        self.crds_ready: list[pulumi.Resource] = [self.base, self.istiod]
        self.revision = cfg.istio.revision
        self.revision_tag = cfg.istio.revision_tag
        self.register_outputs(
            {
                "revision": self.revision,
                "revisionTag": self.revision_tag,
                "istiod": self.istiod.name,
                "ingressGateway": self.ingress_gateway.name,
                "egressGateway": self.egress_gateway.name,
            }
        )
