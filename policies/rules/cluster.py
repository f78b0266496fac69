"""The DOKS cluster as production needs it: an HA control plane, surge upgrades, a
maintenance window, and an API reachable only from an allow-list.

Each is a cluster input the program sets from config (known at preview). The allow-list may be
waived only by a granted exception (`controlPlaneAllowList`), the policy counterpart of the
stack's `cluster.publicControlPlane: {reason}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.base import (
    RESOURCE,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    items,
    message,
)

CLUSTER = "digitalocean:index/kubernetesCluster:KubernetesCluster"
_OPEN = {"0.0.0.0/0", "::/0"}


def check(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if resource.resource_type != CLUSTER:
        return
    props = resource.props
    name = f"DOKS cluster {dig(props, 'name', default=resource.name)}"
    if dig(props, "ha") is not True and not excepted(config, "ha"):
        yield message(
            f"{name} has no HA control plane (ha: false)",
            "a single control-plane replica makes every DigitalOcean control-plane "
            "maintenance an API outage: no deploys, no autoscaling, no webhook changes.",
            "set `cluster.ha: true` (it cannot be turned off again without a rebuild)",
        )
    if dig(props, "surgeUpgrade") is not True and not excepted(config, "surgeUpgrade"):
        yield message(
            f"{name} upgrades nodes without surge (surgeUpgrade: false)",
            "without surge nodes are drained before their replacement exists, so capacity "
            "drops during every upgrade.",
            "set `cluster.surgeUpgrade: true`",
        )
    window = dig(props, "maintenancePolicy", default={})
    if not (dig(window, "day") and dig(window, "startTime")) and not excepted(
        config, "maintenancePolicy"
    ):
        yield message(
            f"{name} has no maintenance window (maintenancePolicy day and startTime)",
            "automatic patch upgrades then happen whenever DigitalOcean chooses.",
            "set `cluster.maintenanceWindow: {day: sunday, startTime: '03:00'}`",
        )
    firewall = dig(props, "controlPlaneFirewall", default={})
    allowed = [str(a) for a in items(dig(firewall, "allowedAddresses"))]
    open_api = dig(firewall, "enabled") is not True or not allowed or bool(_OPEN & set(allowed))
    if open_api and not excepted(config, "controlPlaneAllowList"):
        yield message(
            f"{name} accepts Kubernetes API connections from anywhere (no control-plane "
            "allow-list)",
            "the API is the cluster's root of control; an open endpoint is one leaked "
            "credential or one API-server CVE away from a takeover.",
            "set `cluster.controlPlaneAllowList` to your office/CI ranges (not 0.0.0.0/0), or "
            'grant "cluster-production-settings": {"exceptions": {"controlPlaneAllowList": '
            '"<why>"}}',
        )


RULES = [
    Rule(
        name="cluster-production-settings",
        description=(
            "The DOKS cluster has an HA control plane, surge upgrades, a maintenance window "
            "and a control-plane allow-list."
        ),
        kind=RESOURCE,
        check=check,
        remediation="Set the `cluster.*` keys named in the message in the stack file.",
        config={
            "exceptions": exceptions_schema(
                "ha, surgeUpgrade, maintenancePolicy or controlPlaneAllowList"
            )
        },
        severity="high",
        exception_key="ha, surgeUpgrade, maintenancePolicy or controlPlaneAllowList",
    )
]
