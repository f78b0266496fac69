"""The `traffic` config section: the tier's resilience defaults every route and destination
gets, the canary analysis defaults, and the size of Flagger and its load tester, with per-tier
profiles. What each service declares (versions, routes, overrides, a canary) is on the service
graph (`services[i].traffic`, `model.py`); `traffic_problems` checks both, before anything is
registered (the per-service checks are in `checks.py`). Pure: no Pulumi.

The defaults a demanding engineer would choose: retries only on conditions where the request
never reached the application (connect failure, refused stream, reset before request, gRPC
UNAVAILABLE/CANCELLED), so a POST is never repeated after it ran; per-try timeouts whose sum
fits the route's timeout; 5 consecutive 5xx eject a host for 30s; least-request balancing;
connection limits sized per tier. Dev is lenient on time (debuggers, cold caches) and small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import field_validator

from components.base.model import MISSING, ConfigModel, Problem, between
from components.base.profiles import Profile
from components.base.workload import Resources
from components.graph.checks import ServiceGraph
from components.slo.config import SloObjective
from components.traffic import canary_checks, checks, exposure, names
from components.traffic.model import CanaryAnalysis
from components.traffic.resilience import Resilience, retry_budget_problem, seed_mistakes

# Conditions safe to retry for any method: the request did not reach the application.
SAFE_RETRY_ON = [
    "connect-failure",
    "refused-stream",
    "reset-before-request",
    "unavailable",
    "cancelled",
]


@dataclass(frozen=True)
class TrafficRules:
    """What a tier demands of traffic: faults only with a stated exception, HA Flagger."""

    faults_need_exception: bool
    min_flagger_replicas: int


class ControllerConfig(ConfigModel):
    """Replicas and resources of Flagger or of its load tester."""

    replicas: int
    resources: Resources

    _replicas = field_validator("replicas")(between(1, 5))


def _resilience(timeout: str, per_try: str, connections: int, ejection: int) -> dict[str, Any]:
    return {
        "timeout": timeout,
        "retries": {"attempts": 2, "perTryTimeout": per_try, "retryOn": SAFE_RETRY_ON},
        "outlierDetection": {
            "consecutive5xxErrors": 5,
            "interval": "10s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": ejection,
            # Envoy ejects at least one host whatever the cap, and Istio turns Envoy's panic
            # routing off unless this is set (1.30 `cluster_traffic_policy.go`): a pool of one
            # would answer 503 for the whole ejection. Below half healthy, serve every host.
            "minHealthPercent": 50,
        },
        "connectionPool": {
            "maxConnections": connections,
            "connectTimeout": "2s",
            "http1MaxPendingRequests": connections,
            "http2MaxRequests": connections,
        },
        "loadBalancer": {"simple": "LEAST_REQUEST"},
    }


def _canary(interval: str, threshold: int, step: int, iterations: int, mirror: int):
    return {
        "interval": interval,
        "threshold": threshold,
        "stepWeight": step,
        "maxWeight": 50,
        "iterations": iterations,
        "mirrorWeight": mirror,
        # Burn rate 1 spends the error budget exactly as fast as the SLO allows.
        "maxBurnRate": 1,
        "progressDeadlineSeconds": 600,
    }


def _controller(replicas: int, memory_limit: str) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "resources": {
            "cpuRequest": "50m",
            "memoryRequest": "64Mi",
            "cpuLimit": "1",
            "memoryLimit": memory_limit,
        },
    }


def _defaults(resilience, canary, flagger, loadtester) -> dict[str, Any]:
    return {
        "resilience": resilience,
        "canary": canary,
        "flagger": _controller(flagger, "512Mi"),
        "loadtester": _controller(loadtester, "512Mi"),
    }


class TrafficConfig(ConfigModel):
    """The `traffic` section."""

    # Defaults of every route and destination; services override keys (`traffic.resilience`).
    resilience: Resilience
    # Defaults of every canary's analysis; a canary overrides keys (`canary.analysis`).
    canary: CanaryAnalysis
    flagger: ControllerConfig
    loadtester: ControllerConfig

    PROFILES: ClassVar[dict[str, Profile[TrafficRules]]] = {
        # dev: a slow debugger may hold a request; a single replica may be ejected (panic
        # routing, `minHealthPercent`, keeps serving it); canaries judged quickly.
        "dev": Profile(
            _defaults(_resilience("30s", "10s", 256, 100), _canary("30s", 2, 25, 4, 100), 1, 1),
            TrafficRules(faults_need_exception=False, min_flagger_replicas=1),
        ),
        "staging": Profile(
            _defaults(_resilience("10s", "3s", 1024, 50), _canary("1m", 5, 10, 10, 100), 2, 1),
            TrafficRules(faults_need_exception=False, min_flagger_replicas=2),
        ),
        # production: never eject more than a third of a pool (the rest must carry its load);
        # mirror half of the traffic to a canary sized like the primary.
        "production": Profile(
            _defaults(_resilience("10s", "3s", 4096, 30), _canary("1m", 5, 10, 10, 50), 2, 2),
            TrafficRules(faults_need_exception=True, min_flagger_replicas=2),
        ),
    }


def analysis_problems(key: str, analysis: CanaryAnalysis) -> list[Problem]:
    """A resolved analysis states every key, and its steps reach its maximum weight."""
    problems = [
        Problem(f"{key}.{field.alias or name}", MISSING, "is required (the tier's default)")
        for name, field in CanaryAnalysis.model_fields.items()
        if getattr(analysis, name) is None
    ]
    step, top = analysis.step_weight, analysis.max_weight
    if step is not None and top is not None and step > top:
        problems.append(Problem(f"{key}.stepWeight", step, f"must not exceed maxWeight ({top})"))
    return problems


def traffic_problems(
    traffic: TrafficConfig,
    rules: TrafficRules,
    environment: str,
    graph: ServiceGraph,
    gateway_hosts: Sequence[str],
    objectives: Sequence[SloObjective],
) -> list[Problem]:
    """The section's own checks, then every service's traffic against the graph, the tier,
    the public Gateway's hosts and the SLO objectives. `environment` is only named in
    messages."""
    problems = seed_mistakes("traffic.resilience", traffic.resilience)
    if budget := retry_budget_problem("traffic.resilience", traffic.resilience):
        problems.append(budget)
    problems += analysis_problems("traffic.canary", traffic.canary)
    if names.canaried(graph) and traffic.flagger.replicas < rules.min_flagger_replicas:
        problems.append(
            Problem(
                "traffic.flagger.replicas",
                traffic.flagger.replicas,
                f"must be at least {rules.min_flagger_replicas} in {environment} "
                "(leader election: a standby takes over a failed controller mid-analysis)",
            )
        )
    problems += checks.service_problems(
        graph, traffic.resilience, rules.faults_need_exception, environment
    )
    problems += canary_checks.canary_problems(graph, traffic.canary, objectives)
    problems += exposure.exposure_problems(graph, gateway_hosts)
    return problems
