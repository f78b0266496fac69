"""`SloRules`: one Prometheus Operator `PrometheusRule` per declared objective."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.base.resources import register
from components.graph.checks import ServiceGraph
from components.slo.config import SloObjective
from components.slo.rules import prometheus_rule


@dataclass(frozen=True)
class SloRulesArgs:
    objectives: tuple[SloObjective, ...]
    environment: str  # the `environment` label of every alert
    # The declared services: the Kubernetes Services each objective's requests are reported
    # under (a canaried one's include Flagger's `-primary` and `-canary`).
    graph: ServiceGraph
    # What creates the PrometheusRule CRD and runs the operator (kube-prometheus-stack).
    operator: Sequence[pulumi.Resource]


class SloRules(pulumi.ComponentResource):
    """One PrometheusRule per objective, registered after the Prometheus Operator CRDs; the
    Pulumi name is the rule's own (`slo-<objective>`)."""

    def __init__(
        self, name: str, args: SloRulesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("service-mesh:slo:SloRules", name, None, opts)
        self.rules: dict[str, pulumi.CustomResource] = {}
        for objective in args.objectives:
            self.rules[objective.name] = register(
                f"{name}-{objective.name}",
                prometheus_rule(
                    objective,
                    args.environment,
                    args.graph.by_name[objective.service].service_names,
                ),
                pulumi.ResourceOptions(parent=self, depends_on=list(args.operator)),
            )
        self.register_outputs({"ruleNames": [f"slo-{o.name}" for o in args.objectives]})
