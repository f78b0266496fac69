"""Every object the traffic layer authors, grouped by what each group waits for, and the two
Helm values it installs with. The builders live by sub-concern (`routing`, `sidecars`,
`canary`, `flagger`). Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from components.graph.checks import ServiceGraph
from components.slo.config import SloObjective
from components.traffic import canary, flagger, names, routing, sidecars
from components.traffic.config import TrafficConfig


@dataclass(frozen=True)
class TrafficObjects:
    # Istio objects in mesh namespaces and the public VirtualServices: after the Istio CRDs.
    routing: list[dict[str, Any]]
    # Flagger's namespace, Helm values and objects; empty when no service is canaried.
    flagger_namespace: dict[str, Any] | None = None
    flagger_values: dict[str, Any] | None = None
    loadtester_values: dict[str, Any] | None = None
    flagger_istio: list[dict[str, Any]] = field(default_factory=list)
    flagger_network: list[dict[str, Any]] = field(default_factory=list)
    # Service name -> its MetricTemplates; and the Canaries: after Flagger's CRDs.
    metric_templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    canaries: list[dict[str, Any]] = field(default_factory=list)

    def all(self) -> list[dict[str, Any]]:
        out = list(self.routing)
        if self.flagger_namespace is not None:
            out.append(self.flagger_namespace)
        out += self.flagger_istio + self.flagger_network
        out += [t for ts in self.metric_templates.values() for t in ts]
        return out + self.canaries


def traffic_objects(
    graph: ServiceGraph,
    traffic: TrafficConfig,
    gateway_hosts: Sequence[str],
    objectives: Sequence[SloObjective],
    revision_tag: str,
) -> TrafficObjects:
    defaults = traffic.resilience
    mesh_objects = routing.routing_objects(graph, gateway_hosts, defaults)
    mesh_objects += sidecars.mesh_sidecars(graph)
    canaried = names.canaried(graph)
    if not canaried:
        return TrafficObjects(routing=mesh_objects)
    return TrafficObjects(
        routing=mesh_objects,
        flagger_namespace=flagger.flagger_namespace(),
        flagger_values=flagger.flagger_values(traffic.flagger, revision_tag),
        loadtester_values=flagger.loadtester_values(traffic.loadtester, revision_tag),
        flagger_istio=flagger.webhook_objects() + sidecars.flagger_sidecars(graph),
        flagger_network=flagger.loadtester_network_policies(graph),
        metric_templates={s.name: canary.metric_templates(s, objectives) for s in canaried},
        canaries=[
            canary.canary(s, defaults, traffic.canary, gateway_hosts, objectives) for s in canaried
        ],
    )
