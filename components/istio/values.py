"""Values of the Istio `base` and `istiod` charts (pinned in `components/base/pins.py`): the
default validator, one istiod per revision, HA on the tainted system pool, and the meshConfig
other layers contribute fragments to. Pure: no Pulumi.

No istiod release renders revision tags (`revisionTags: []`): each tag's webhook and Service
are authored once (`tags.py`), so a tag has one owner and moving it is an in-place update.
The values are the same for every pinned version (`pins.ISTIO_VERSIONS`); a value that differs
between chart versions is chosen here, on `revision.version`, where it differs."""

from __future__ import annotations

from typing import Any

from components.base import mesh
from components.base.model import deep_merge
from components.base.workload import Workload, spread
from components.cluster.pools import SYSTEM_POOL_LABEL, system_pool_toleration
from components.istio.config import IstioConfig
from components.istio.revisions import IstioRevision

# Pod-template annotation written where the program owns injected pod templates (the gateway
# charts' `podAnnotations`): bumping `istio.restartEpoch` rolls those pods, re-injecting them
# with the control plane their revision now selects. istiod runs no proxy: restarting it would
# only make every proxy in the mesh reconnect.
RESTART_ANNOTATION = "service-mesh/restart-epoch"


# A pod that is not Ready may always be evicted: with the default (IfHealthyBudget) one
# crashlooping istiod or gateway pod leaves the budget no disruption to allow, and every node
# drain and DOKS surge upgrade waits on it (Kubernetes `unhealthyPodEvictionPolicy`; rendered
# by the istiod chart from `pdb`, and copied by the gateway chart from `podDisruptionBudget`).
EVICT_UNHEALTHY = {"unhealthyPodEvictionPolicy": "AlwaysAllow"}


def restart_annotations(epoch: int) -> dict[str, str]:
    """Nothing at epoch 0, so that introducing the key restarts nothing."""
    return {RESTART_ANNOTATION: str(epoch)} if epoch else {}


def replica_values(workload: Workload) -> dict[str, Any]:
    """istiod chart: with the HPA on, `replicaCount` is ignored and autoscaleMin governs."""
    if workload.autoscaled:
        return {
            "autoscaleEnabled": True,
            "autoscaleMin": workload.min_replicas,
            "autoscaleMax": workload.max_replicas,
        }
    return {"autoscaleEnabled": False, "replicaCount": workload.min_replicas}


def base_values(istio: IstioConfig) -> dict[str, Any]:
    """Base chart: CRDs, and the default validator pointed at the revision holding the
    `default` tag (`IstioConfig.default_revision`: derived, so they cannot disagree).

    The validators' `failurePolicy` is left to the charts (`base.validationFailurePolicy`
    unset): installed as `helm.v3.Release`, they render `Ignore` on the first install and
    istiod flips it to `Fail` once it has patched in its `caBundle`, and on upgrades (Helm's
    `.Release.IsUpgrade`) they omit the field so istiod's `Fail` stays. Forcing `Fail` from the
    first install races that patch: the first Istio objects could be refused with x509 errors."""
    return {"defaultRevision": istio.default_revision}


def mesh_config_values() -> dict[str, Any]:
    """This layer's meshConfig: JSON access logs, discovery limited to labelled namespaces (and
    kube-system and default, see `mesh.DISCOVERED_BY_NAME`),
    applications start only once their sidecar is ready. (Metrics merging is the observability
    layer's fragment: its PodMonitors depend on it.)"""
    return {
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "JSON",
        # Selectors are ORed: our labelled namespaces, and by name those we do not own.
        "discoverySelectors": [
            {"matchLabels": dict(mesh.DISCOVERY_LABEL)},
            {
                "matchExpressions": [
                    {
                        "key": mesh.NAMESPACE_NAME_LABEL,
                        "operator": "In",
                        "values": list(mesh.DISCOVERED_BY_NAME),
                    }
                ]
            },
        ],
        "defaultConfig": {"holdApplicationUntilProxyStarts": True},
    }


def istiod_pod_labels(revision: str) -> dict[str, str]:
    """Labels the chart selects istiod pods by when a revision is set (its Deployment and PDB
    selector), so the spread counts exactly this revision's pods."""
    return {"app": "istiod", mesh.REVISION_LABEL: revision}


def istiod_values(
    istio: IstioConfig,
    revision: IstioRevision,
    mesh_config: dict[str, Any],
    trace_sampling_percentage: float,
) -> dict[str, Any]:
    """istiod chart values of one revision (every revision gets the same mesh settings).
    `mesh_config` (from the security and observability layers) is deep-merged into
    meshConfig; its lists replace ours."""
    istiod = istio.istiod
    return {
        "revision": revision.name,
        "revisionTags": [],  # tags are authored once, in tags.py
        **replica_values(istiod),
        # The chart's 100% surge / 25% unavailable rolls a whole second set of pods in first;
        # with two revisions on the tainted system pool there is no room for it, the new pods
        # stay Pending and Helm's wait rolls the release back. One at a time instead: one
        # extra pod, and one old pod may go first where replicas remain to serve the webhook.
        "rollingMaxSurge": 1,
        "rollingMaxUnavailable": 1 if istiod.min_replicas > 1 else 0,
        "pdb": {**istiod.pdb.helm(), **EVICT_UNHEALTHY},
        "resources": istiod.resources.helm(),
        "nodeSelector": dict(SYSTEM_POOL_LABEL),
        "tolerations": [system_pool_toleration()],
        "topologySpreadConstraints": spread(istiod_pod_labels(revision.name), hard=True),
        # One sampling setting for the mesh: the Telemetry resource's percentage; istiod's
        # legacy default (a percentage too: 1.0 means 1%) is kept equal to it.
        "traceSampling": trace_sampling_percentage,
        "meshConfig": deep_merge(mesh_config_values(), mesh_config),
        "global": {
            "logAsJson": istio.log_as_json,
            "defaultPodDisruptionBudget": {"enabled": True},
            "proxy": {"resources": istio.proxy.helm()},
        },
    }
