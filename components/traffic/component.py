"""`TrafficManagement`: registers what `objects.py` builds — VirtualServices, DestinationRules
and Sidecars from the service graph, and for canaried services Flagger, its load tester, the
SLO MetricTemplates and the Canaries.

Ordering in the graph: Istio objects after their namespace and the Istio CRDs and webhook;
Flagger after kube-prometheus-stack (its ServiceMonitor's CRD); Flagger and the load tester
after istiod (their pods are injected), their Sidecars and the policies of the webhook calls;
MetricTemplates
and Canaries after Flagger's chart (its CRDs), and a Canary also after the load tester and the
mesh's policies (`policies_ready`), which admit the `-primary` workload Flagger creates.

Why `helm.v4.Chart` for Flagger and the load tester: neither chart has hooks, so the preview
shows one diff per rendered object; and Pulumi manages the Canary CRDs from the chart's `crds/`
as resources, so a chart bump upgrades them (a Helm release never upgrades `crds/`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.base import pins
from components.base.manifests import resource_name
from components.base.resources import chart, register
from components.graph.checks import ServiceGraph
from components.slo.config import SloObjective
from components.traffic import names
from components.traffic.config import TrafficConfig
from components.traffic.objects import traffic_objects


@dataclass(frozen=True)
class TrafficManagementArgs:
    graph: ServiceGraph
    traffic: TrafficConfig
    gateway_hosts: tuple[str, ...]  # ingress.hosts: the public Gateway's hosts
    objectives: tuple[SloObjective, ...]  # what canaries are judged by
    revision_tag: str  # the load tester's pods are injected through it
    namespaces: Mapping[str, pulumi.Resource]  # every namespace an object lands in
    crds_ready: Sequence[pulumi.Resource]  # Istio CRDs and istiod's webhook
    # The revision tag's webhook: the Flagger charts' pods are injected through it.
    injector: Sequence[pulumi.Resource]
    prometheus: Sequence[pulumi.Resource]  # kube-prometheus-stack (ServiceMonitor CRD)
    policies_ready: Sequence[pulumi.Resource]  # the mesh's authorization and network policies


class TrafficManagement(pulumi.ComponentResource):
    """One Pulumi resource per object, named `<ns>-<name>`; the Flagger charts by release."""

    def __init__(
        self, name: str, args: TrafficManagementArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:traffic:TrafficManagement", name, None, opts)
        built = traffic_objects(
            args.graph, args.traffic, args.gateway_hosts, args.objectives, args.revision_tag
        )
        self.resources: list[pulumi.Resource] = []
        for obj in built.routing:
            ns = args.namespaces[obj["metadata"]["namespace"]]
            self._register(obj, [ns, *args.crds_ready])
        if built.flagger_namespace is not None:
            self._flagger(args, built)
        self.register_outputs({"objects": len(self.resources)})

    def _opts(self, depends_on: Sequence[pulumi.Resource]) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

    def _register(self, obj: dict[str, Any], depends_on: Sequence[pulumi.Resource]):
        resource = register(resource_name(obj), obj, self._opts(depends_on))
        self.resources.append(resource)
        return resource

    def _flagger(self, args: TrafficManagementArgs, built: Any) -> None:
        meta = built.flagger_namespace["metadata"]
        ns = k8s.core.v1.Namespace(f"ns-{meta['name']}", metadata=meta, opts=self._opts([]))
        webhook = [self._register(o, [ns, *args.crds_ready]) for o in built.flagger_istio]
        network = [self._register(o, [ns]) for o in built.flagger_network]
        # Both charts' pods are injected: after istiod and the webhook of the tag their pods
        # select, and after their Sidecars and policies.
        injected = [*args.crds_ready, *args.injector, *webhook]
        self.flagger = chart(
            names.FLAGGER_RELEASE,
            pins.FLAGGER,
            names.FLAGGER_NAMESPACE,
            built.flagger_values,
            self._opts([ns, *args.prometheus, *injected]),
        )
        self.loadtester = chart(
            names.LOADTESTER_RELEASE,
            pins.FLAGGER_LOADTESTER,
            names.FLAGGER_NAMESPACE,
            built.loadtester_values,
            self._opts([ns, *injected, *network]),
        )
        for canary in built.canaries:
            meta = canary["metadata"]
            svc_ns = args.namespaces[meta["namespace"]]
            templates = [
                self._register(t, [self.flagger, svc_ns])
                for t in built.metric_templates[meta["name"]]
            ]
            self._register(
                canary,
                [self.flagger, self.loadtester, svc_ns, *templates, *args.policies_ready],
            )
