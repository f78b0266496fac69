"""Static checks of every canary (`services[i].traffic.canary`), before anything is registered:
a canary excludes static routes for its host (Flagger owns them), needs an SLO to be judged by,
a label Flagger can select the primary on, names Flagger's generated ones do not collide with,
an A/B match Flagger and the load tester can both use, and a load test it can run, sending
enough requests that one failed request does not fail a check. Pure: no Pulumi.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from components.base.model import MISSING, Problem
from components.graph.checks import ServiceGraph
from components.graph.model import MeshService
from components.slo.config import SloObjective
from components.slo.rules import budget, num
from components.traffic import names
from components.traffic.canary import canary_slis, load_requests, load_seconds, objectives_of
from components.traffic.model import CanaryAnalysis
from components.traffic.resilience import overlay


def canary_problems(
    graph: ServiceGraph, defaults: CanaryAnalysis, objectives: Sequence[SloObjective]
) -> list[Problem]:
    problems: list[Problem] = []
    judged = {o.service for o in objectives}
    for i, svc in enumerate(graph.services):
        canary = svc.canary
        if canary is None:
            continue
        assert svc.traffic is not None
        key = f"services[{i}].traffic"
        for field in ("routes", "versions"):
            if getattr(svc.traffic, field):
                problems.append(
                    Problem(
                        f"{key}.{field}",
                        field,
                        "must be empty for a canaried service: Flagger owns the "
                        "VirtualService, DestinationRules and Services of its host (use "
                        "canary.kind 'ab' to route by header or cookie, 'mirror' to mirror)",
                    )
                )
        if not svc.speaks_http:
            problems.append(
                Problem(f"{key}.canary", "canary", "needs an http, http2 or grpc port to analyse")
            )
        if canary.kind == "mirror" and (writes := _writes(svc)):
            problems.append(
                Problem(
                    f"{key}.canary.kind",
                    "mirror",
                    f"copies every request to the canary, which serves it for real (only its "
                    f"response is dropped), and {svc.name} accepts {', '.join(writes)}: each "
                    "would happen twice. Use kind 'progressive' or 'ab' (without a canary, a "
                    "route's mirror copies only GET, HEAD and OPTIONS)",
                )
            )
        if names.flagger_label(svc) is None:
            problems.append(
                Problem(
                    f"services[{i}].selector",
                    svc.workload_labels,
                    "a canaried workload must be selected by one of Flagger's selector labels ("
                    f"{', '.join(names.FLAGGER_SELECTOR_LABELS)}): Flagger names the primary's "
                    "pods by rewriting it",
                )
            )
        if svc.name not in judged:
            problems.append(
                Problem(
                    f"{key}.canary",
                    "canary",
                    f"needs an SLO objective for service {svc.name!r} in slos.objectives: the "
                    "canary is judged by the same SLIs as its burn-rate alerts",
                )
            )
        for generated in names.generated_names(svc)[1:]:
            if generated in graph.by_name:
                problems.append(
                    Problem(
                        f"services[{i}].name",
                        svc.name,
                        f"is canaried, so Flagger generates the Service {generated!r}, which "
                        "is also declared in services: rename one of them",
                    )
                )
        if len(svc.name) > 55:
            problems.append(
                Problem(
                    f"services[{i}].name",
                    svc.name,
                    "must be at most 55 characters when canaried ('<name>-primary' is a name)",
                )
            )
        problems += _canary_kind_problems(f"{key}.canary", svc)
        analysis = overlay(defaults, canary.analysis)
        assert analysis is not None
        problems += _load_test_problems(f"{key}.canary.loadTest", svc, analysis, objectives)
        if (
            analysis.step_weight is not None
            and analysis.max_weight is not None
            and analysis.step_weight > analysis.max_weight
        ):
            problems.append(
                Problem(
                    f"{key}.canary.analysis.stepWeight",
                    analysis.step_weight,
                    f"must not exceed maxWeight ({analysis.max_weight})",
                )
            )
    if names.canaried(graph) and names.FLAGGER_NAMESPACE in graph.namespace_names:
        problems.append(
            Problem(
                "meshNamespaces",
                names.FLAGGER_NAMESPACE,
                f"{names.FLAGGER_NAMESPACE!r} is where Flagger and its load tester run; give the "
                "mesh namespace another name",
            )
        )
    return problems


def _canary_kind_problems(key: str, svc: MeshService) -> list[Problem]:
    canary = svc.canary
    assert canary is not None
    problems: list[Problem] = []
    if canary.kind == "ab" and not canary.match:
        problems.append(
            Problem(
                f"{key}.match",
                MISSING,
                "an 'ab' canary needs the header or cookie match that selects its users",
            )
        )
    if canary.kind != "ab" and canary.match:
        problems.append(
            Problem(
                f"{key}.match",
                [m.model_dump(by_alias=True, exclude_none=True) for m in canary.match],
                f"only an 'ab' canary routes by match; a {canary.kind!r} one takes none",
            )
        )
    for j, block in enumerate(canary.match):
        if block.uri_prefix is not None or block.method is not None:
            problems.append(
                Problem(
                    f"{key}.match[{j}]",
                    block.model_dump(by_alias=True, exclude_none=True),
                    "Flagger's A/B match takes headers and cookies only (no uriPrefix or method)",
                )
            )
        for name, cond in block.headers.items():
            if cond.regex is not None:
                problems.append(
                    Problem(
                        f"{key}.match[{j}].headers.{name}",
                        cond.istio(),
                        "use exact or prefix: the load tester must send a matching header, "
                        "and no value can be derived from a regex",
                    )
                )
    if canary.load_test.cmd is None and not any(p.protocol in ("http", "http2") for p in svc.ports):
        problems.append(
            Problem(
                f"{key}.loadTest.cmd",
                MISSING,
                "is required for a gRPC-only service (the default load test is HTTP, `hey`); "
                "e.g. a `ghz` command",
            )
        )
    return problems


def _load_test_problems(
    key: str, svc: MeshService, analysis: CanaryAnalysis, objectives: Sequence[SloObjective]
) -> list[Problem]:
    """The default load test must send enough requests per interval that one failed request
    stays within `maxBurnRate`: below that, a single error fails a check (a tiny test, e.g.
    qps 1, concurrency 1, against 99.9% burns 20 times the budget on one 5xx). Real traffic on a
    progressive canary only adds requests, so the load test alone is the floor. A mirror
    canary gets only `mirrorWeight` % of them: the load test calls the service, and Flagger
    copies that share to the canary."""
    canary = svc.canary
    assert canary is not None and analysis.interval is not None
    test = canary.load_test
    if test.cmd is not None or analysis.max_burn_rate is None:
        return []
    share = Decimal(1)
    if canary.kind == "mirror" and analysis.mirror_weight is not None:
        share = Decimal(analysis.mirror_weight) / 100
    sent = load_requests(test, analysis.interval)
    seen = sent * share
    max_burn = Decimal(str(analysis.max_burn_rate))
    seconds = load_seconds(analysis.interval)
    mirrored = f", {num(share * 100)}% of them mirrored to the canary" if share != 1 else ""
    problems: list[Problem] = []
    for objective in objectives_of(svc, objectives):
        for sli in canary_slis(objective):
            allowed = budget(sli.target)
            if seen * allowed * max_burn >= 1:
                continue
            needed = math.ceil(1 / (allowed * max_burn * share * test.concurrency * seconds))
            problems.append(
                Problem(
                    f"{key}.qps",
                    test.qps,
                    f"sends {sent} requests per {analysis.interval} interval (qps {test.qps} per "
                    f"worker x concurrency {test.concurrency} x {seconds} s{mirrored}), so one "
                    f"failed request is a burn rate of {num(1 / (seen * allowed))} against "
                    f"{objective.name}'s {sli.kind} {num(sli.target)}%, above maxBurnRate "
                    f"{num(max_burn)}: a single error would fail a check. Use qps {needed} or "
                    "more (or raise concurrency, or the interval)",
                )
            )
            break
    return problems


def _writes(svc: MeshService) -> list[str]:
    """The methods the service accepts that change something (all but GET, HEAD, OPTIONS)."""
    methods = {m for c in svc.callers for m in c.methods}
    if svc.ingress is not None:
        methods |= set(svc.ingress.methods)
    if svc.canary is not None:
        methods.add(svc.canary.load_test.method)
    return sorted(methods - {"GET", "HEAD", "OPTIONS"})
