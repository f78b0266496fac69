"""Flagger canaries (`flagger.app/v1beta1`) for services that declare `traffic.canary`, judged
by their SLO objectives.

Each SLI of each of the service's objectives becomes a `MetricTemplate` whose query is the SLI
of the burn-rate alerts (`components/slo/rules.py`, the same bad and total requests) restricted
to the workload under analysis (`destination_workload="{{ target }}"`) over the analysis
interval, divided by the objective's error budget: the canary's burn rate. The Canary rolls back
after `threshold` intervals in which the canary spends its budget faster than `maxBurnRate`
(1: exactly as fast as the SLO allows). Flagger's load tester sends requests every interval,
so a quiet service still yields values: in Flagger 1.44 a query without data ("no values
found") counts as a failed check towards rollback (`pkg/controller/scheduler_metrics.go`).
So the load test also runs as a `pre-rollout` webhook: the `rollout` one fires only within an
analysis step, right before its queries, which left the first step without traffic. Each run
lasts less than the interval: the load tester skips a command while the previous run of it is
still going (`pkg/loadtester/runner.go`), which would leave a whole interval without load.

The Canary's traffic policy is the service's resolved resilience with `ISTIO_MUTUAL` TLS (the
mesh is STRICT; Flagger's tutorials' `DISABLE` would break every call). Flagger's schema has no
TCP connection pool, so a canary gets the HTTP limits only. Pure: no Pulumi.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from components.base import manifests
from components.edge.gateway import PUBLIC_GATEWAY
from components.graph.model import MeshService
from components.observability.metrics import PROMETHEUS_URL
from components.slo.config import SloObjective
from components.slo.rules import Sli, budget, num, slis
from components.traffic import checks, names
from components.traffic.exposure import public_hosts
from components.traffic.model import CanaryAnalysis, LoadTest
from components.traffic.resilience import Resilience, duration_ms, overlay

FLAGGER_API = "flagger.app/v1beta1"
# The workload under analysis, as Flagger fills in its template variables.
CANARY_SELECTOR = (
    'destination_workload="{{ target }}"',
    'destination_workload_namespace="{{ namespace }}"',
)
WINDOW = "{{ interval }}"


def template_name(objective: SloObjective, sli: Sli) -> str:
    return f"slo-{objective.name}-{sli.kind}"


def burn_rate_query(objective: SloObjective, sli: Sli) -> str:
    """The canary's error ratio of `sli` over the interval, over the objective's budget."""
    bad, total = sli.at(sli.bad, WINDOW), sli.at(sli.total, WINDOW)
    return f"(({bad} or vector(0)) / ({total} > 0)) / {num(budget(sli.target))}"


def canary_slis(objective: SloObjective) -> list[Sli]:
    return slis(objective, selector=CANARY_SELECTOR)


def metric_template(svc: MeshService, objective: SloObjective, sli: Sli) -> dict[str, Any]:
    spec = {
        "provider": {"type": "prometheus", "address": PROMETHEUS_URL},
        "query": burn_rate_query(objective, sli),
    }
    return manifests.namespaced(
        "MetricTemplate", FLAGGER_API, template_name(objective, sli), svc.namespace, spec, "traffic"
    )


def objectives_of(svc: MeshService, objectives: Sequence[SloObjective]) -> list[SloObjective]:
    return [o for o in objectives if o.service == svc.name and o.namespace == svc.namespace]


def metric_templates(svc: MeshService, objectives: Sequence[SloObjective]) -> list[dict[str, Any]]:
    return [
        metric_template(svc, o, sli)
        for o in objectives_of(svc, objectives)
        for sli in canary_slis(o)
    ]


def _match_headers(svc: MeshService) -> list[str]:
    """Headers that make a load-test request match the A/B canary's first match block."""
    canary = svc.canary
    if canary is None or canary.kind != "ab" or not canary.match:
        return []
    block = canary.match[0]
    out = [f"{name}: {cond.value}" for name, cond in sorted(block.headers.items())]
    if (pair := block.cookie_pair) is not None:
        out.append(f"Cookie: {pair[0]}={pair[1]}")
    return out


def load_seconds(interval: str) -> int:
    """How long one load-test run lasts: 10 s less than the interval (half of a short one), so
    it has ended when the next interval starts it again."""
    seconds = duration_ms(interval) // 1000
    return max(seconds - 10, seconds // 2, 1)


def load_window(interval: str) -> str:
    return f"{load_seconds(interval)}s"


def load_requests(test: LoadTest, interval: str) -> int:
    """Requests one default load-test run sends: `hey -q` limits each of its `-c` workers."""
    return test.qps * test.concurrency * load_seconds(interval)


def load_test_cmd(svc: MeshService, interval: str) -> str:
    """`hey` for most of `interval` against the canary: the `-canary` Service for a progressive
    canary, the service itself (routed by Flagger's VirtualService) for A/B and mirroring."""
    canary = svc.canary
    assert canary is not None
    test = canary.load_test
    if test.cmd is not None:
        return test.cmd
    apex, _, canary_name = names.generated_names(svc)
    target = canary_name if canary.kind == "progressive" else apex
    url = f"http://{target}.{svc.namespace}:{svc.http_port}{test.path}"
    args = ["hey", "-z", load_window(interval), "-q", str(test.qps), "-c", str(test.concurrency)]
    args += ["-m", test.method]
    for header in _match_headers(svc):
        args += ["-H", header]
    return shlex.join([*args, url])


def _autoscaler_ref(hpa: str | None) -> dict[str, Any]:
    """Flagger copies the named HPA for the primary and points it there
    (pkg/canary/deployment_controller.go); none: no `autoscalerRef`."""
    if hpa is None:
        return {}
    ref = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": hpa}
    return {"autoscalerRef": ref}


def _traffic_policy(resilience: Resilience) -> dict[str, Any]:
    policy = resilience.traffic_policy(http=True)
    pool = policy.get("connectionPool")
    if pool is not None:
        pool.pop("tcp", None)  # not in Flagger's schema
        if not pool:
            policy.pop("connectionPool")
    return {"tls": {"mode": "ISTIO_MUTUAL"}, **policy}


def resolved_analysis(svc: MeshService, defaults: CanaryAnalysis) -> CanaryAnalysis:
    assert svc.canary is not None
    out = overlay(defaults, svc.canary.analysis)
    assert out is not None
    return out


def canary(
    svc: MeshService,
    defaults: Resilience,
    analysis_defaults: CanaryAnalysis,
    gateway_hosts: Sequence[str],
    objectives: Sequence[SloObjective],
) -> dict[str, Any]:
    spec_canary = svc.canary
    assert spec_canary is not None
    analysis = resolved_analysis(svc, analysis_defaults)
    interval = str(analysis.interval)
    resilience = checks.resolved(defaults, svc)
    port = svc.http_port
    declared = next(p for p in svc.ports if p.port == port)
    service: dict[str, Any] = {
        "port": port,
        "targetPort": port,
        "portName": declared.name,
        # On the Services Flagger generates (v1.44.0 kubernetes_default.go): Istio then knows
        # the protocol whatever the port's name (`api` would otherwise be guessed at).
        "appProtocol": declared.protocol,
        **resilience.route_policy(),
        "trafficPolicy": _traffic_policy(resilience),
    }
    if len(svc.ports) > 1:
        service["portDiscovery"] = True
    if svc.ingress is not None:
        # Flagger adds the mesh only when no gateway is listed: list both.
        service["gateways"] = [PUBLIC_GATEWAY, "mesh"]
        service["hosts"] = list(public_hosts(svc, gateway_hosts))
    steps: dict[str, Any]
    if spec_canary.kind == "progressive":
        steps = {"maxWeight": analysis.max_weight, "stepWeight": analysis.step_weight}
    elif spec_canary.kind == "ab":
        steps = {
            "iterations": analysis.iterations,
            "match": [{"headers": m.header_conditions()} for m in spec_canary.match],
        }
    else:
        steps = {
            "iterations": analysis.iterations,
            "mirror": True,
            "mirrorWeight": analysis.mirror_weight,
        }
    metrics = [
        {
            "name": f"{o.name}-{sli.kind}-burn-rate",
            "templateRef": {"name": template_name(o, sli), "namespace": svc.namespace},
            "thresholdRange": {"max": analysis.max_burn_rate},
            "interval": interval,
        }
        for o in objectives_of(svc, objectives)
        for sli in canary_slis(o)
    ]
    # The same load before the first analysis step (pre-rollout) and within every step
    # (rollout); the load tester runs `cmd` in the background and answers at once. A failed
    # call is a failed check, so a load tester that is briefly away (its own rollout) is
    # retried: Flagger's client retries connection errors and 5xx (v1.44.0 webhook.go).
    load = {"type": "cmd", "cmd": load_test_cmd(svc, interval)}
    webhooks = [
        {
            "name": name,
            "type": kind,
            "url": names.LOADTESTER_URL,
            "timeout": "15s",
            "retries": 2,
            "metadata": dict(load),
        }
        for name, kind in (("load-test-warm-up", "pre-rollout"), ("load-test", "rollout"))
    ]
    spec = {
        "provider": "istio",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc.name},
        **_autoscaler_ref(spec_canary.autoscaler),
        "progressDeadlineSeconds": analysis.progress_deadline_seconds,
        # Deleting the Canary gives the service its own Deployment back, routed as before.
        "revertOnDeletion": True,
        "service": service,
        "analysis": {
            "interval": interval,
            "threshold": analysis.threshold,
            **steps,
            "metrics": metrics,
            "webhooks": webhooks,
        },
    }
    return manifests.namespaced("Canary", FLAGGER_API, svc.name, svc.namespace, spec, "traffic")
