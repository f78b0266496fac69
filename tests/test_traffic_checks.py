"""Static traffic checks (issue 10, items 1-5 and 7): every bad traffic declaration is refused
before anything is registered, with the key path, the value and what is allowed."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from components import config
from components.base import stacks
from components.base.model import ConfigError, Problem
from components.traffic.checks import shares, subsumes
from components.traffic.matches import RouteMatch
from tests.conftest import run_config, stack_config
from tests.test_config import committed

Edit = Callable[[dict[str, Any]], None]


def raw_config(stack: str) -> tuple[dict[str, Any], frozenset[str]]:
    raw, secrets = committed(stack)
    return {k: stacks.decode(v) for k, v in raw.items()}, secrets


def refusal(stack: str, edit: Edit) -> ConfigError:
    data, secrets = raw_config(stack)
    edit(data)
    with pytest.raises(ConfigError) as error:
        config.parse(data, secrets)
    return error.value


def accepted(stack: str, edit: Edit) -> config.PlatformConfig:
    data, secrets = raw_config(stack)
    edit(data)
    return config.parse(data, secrets)


def problem(error: ConfigError, key: str) -> Problem:
    found = [p for p in error.problems if p.key == key]
    assert found, f"no problem at {key}: {error}"
    return found[0]


def service(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in data["services"] if s["name"] == name)


def traffic(data: dict[str, Any], name: str) -> dict[str, Any]:
    return service(data, name).setdefault("traffic", {})


def staging_routes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return traffic(data, "checkout")["routes"]


CHECKOUT = "services[1].traffic"


# --- 2 and 5: versions, order, weights ----------------------------------------------------


def test_a_route_to_an_undeclared_version_is_refused():
    def edit(data):
        staging_routes(data)[1]["destinations"][0]["version"] = "v3"

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[1].destinations[0].version")
    assert p.value == "v3"
    assert f"must be a version declared in {CHECKOUT}.versions (v1, v2)" in p.allowed


def test_a_catch_all_before_specific_routes_shadows_them_and_must_come_last():
    def edit(data):
        routes = staging_routes(data)
        routes.insert(0, routes.pop())  # the catch-all first

    error = refusal("staging", edit)
    for j in (1, 2):
        p = problem(error, f"{CHECKOUT}.routes[{j}]")
        assert "is never reached" in p.allowed
        assert f"{CHECKOUT}.routes[0] has no match (a catch-all)" in p.allowed
    last = problem(error, f"{CHECKOUT}.routes[2].match")
    assert "the last route must be the catch-all" in last.allowed


def test_a_route_covered_by_an_earlier_match_is_refused():
    def edit(data):
        routes = staging_routes(data)
        routes[:2] = [
            {"name": "api", "match": [{"uriPrefix": "/api"}], "destinations": [{"version": "v1"}]},
            {
                "name": "cart",
                "match": [{"uriPrefix": "/api/cart", "method": "GET"}],
                "destinations": [{"version": "v2"}],
            },
        ]

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[1]")
    assert p.value == "cart"
    assert f"{CHECKOUT}.routes[0] already match every request it matches" in p.allowed


@pytest.mark.parametrize(
    ("weights", "key", "words"),
    [
        ([90, -10], "destinations[1].weight", "must not be negative"),
        ([0, 0], "destinations", "all weights are 0"),
        ([90, None], "destinations[1].weight", "weights are relative"),
    ],
)
def test_bad_weights_are_refused(weights, key, words):
    def edit(data):
        staging_routes(data)[2] = {
            "name": "default",
            "destinations": [
                {"version": v, **({"weight": w} if w is not None else {})}
                for v, w in zip(("v1", "v2"), weights, strict=True)
            ],
        }

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[2].{key}")
    assert words in p.allowed


def test_relative_weights_are_accepted_and_their_shares_stated():
    def edit(data):
        staging_routes(data)[2] = {
            "name": "default",
            "destinations": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 20}],
        }

    accepted("staging", edit)
    assert shares([90, 20]) == [81.8, 18.2]
    assert shares([1, 1, 2]) == [25.0, 25.0, 50.0]


def test_a_version_twice_in_one_route_is_refused():
    def edit(data):
        staging_routes(data)[2] = {
            "destinations": [{"version": "v1", "weight": 50}, {"version": "v1", "weight": 50}]
        }

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[2].destinations[1].version")
    assert "listed twice" in p.allowed


# --- 3 and 5: resilience ------------------------------------------------------------------


def test_retries_that_do_not_fit_in_the_timeout_are_refused():
    def edit(data):
        staging_routes(data)[2]["timeout"] = "2s"  # 3 tries of 3s (staging's retries)

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[2].retries.perTryTimeout")
    assert p.value == "3s"
    assert "3 tries (attempts 2 + the first) of 3s need 9000 ms, more than the timeout 2s" in (
        p.allowed
    )


def test_a_service_override_is_checked_against_the_merged_budget():
    def edit(data):
        traffic(data, "payments")["resilience"] = {"retries": {"perTryTimeout": "4s"}}

    p = problem(refusal("staging", edit), "services[2].traffic.resilience.retries.perTryTimeout")
    assert "more than the timeout 10s" in p.allowed


def test_an_override_keeps_the_other_keys_of_the_tier():
    def edit(data):
        traffic(data, "payments")["resilience"] = {
            "timeout": "30s",
            "outlierDetection": {"consecutive5xxErrors": 3},
        }

    cfg = accepted("production", edit)
    from components.traffic.checks import resolved

    payments = cfg.graph.by_name["payments"]
    res = resolved(cfg.traffic.resilience, payments)
    assert res.timeout == "30s" and res.retries.attempts == 2
    assert res.outlier_detection.consecutive_5xx_errors == 3
    assert res.outlier_detection.base_ejection_time == "30s"  # the tier's


@pytest.mark.parametrize(
    ("where", "block", "key", "words"),
    [
        (
            "service",
            {"circuitBreaker": {"maxConnections": 1}},
            "services[2].traffic.resilience.circuitBreaker",
            "use connectionPool",
        ),
        (
            "service",
            {"outlierDetection": {"consecutiveErrors": 5}},
            "services[2].traffic.resilience.outlierDetection.consecutiveErrors",
            "use consecutive5xxErrors",
        ),
        (
            "tier",
            {"circuitBreaker": {"simpleCb": {"maxConnections": 1}}},
            "traffic.resilience.circuitBreaker",
            "is not an Istio field",
        ),
        (
            "tier",
            {"outlierDetection": {"consecutiveErrors": 7}},
            "traffic.resilience.outlierDetection.consecutiveErrors",
            "deprecated",
        ),
    ],
)
def test_seed_mistakes_are_refused_with_what_to_use_instead(where, block, key, words):
    def edit(data):
        if where == "service":
            traffic(data, "payments")["resilience"] = block
        else:
            data["traffic"] = {"resilience": block}

    p = problem(refusal("staging", edit), key)
    assert words in p.allowed


def test_an_unknown_retry_condition_is_refused_with_the_allowed_tokens():
    def edit(data):
        traffic(data, "payments")["resilience"] = {"retries": {"retryOn": ["5xx", "timeout"]}}

    p = problem(refusal("staging", edit), "services[2].traffic.resilience.retries.retryOn")
    assert "'timeout' is not a retry condition" in p.allowed and "gateway-error" in p.allowed


def test_a_status_code_is_a_retry_condition():
    def edit(data):
        traffic(data, "payments")["resilience"] = {"retries": {"retryOn": ["503", "reset"]}}

    accepted("staging", edit)


def test_load_balancer_is_one_of_simple_or_consistent_hash():
    def edit(data):
        traffic(data, "payments")["resilience"] = {
            "loadBalancer": {"simple": "RANDOM", "consistentHash": {"httpHeaderName": "x-user"}}
        }

    error = refusal("staging", edit)
    assert any("exactly one of simple or consistentHash" in p.allowed for p in error.problems)


# --- 4: mirrors and faults ----------------------------------------------------------------


def test_a_mirror_to_the_primary_destination_is_refused():
    def edit(data):
        staging_routes(data)[2]["mirror"] = {"version": "v1", "percentage": 10}

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[2].mirror.version")
    assert "a mirror must copy traffic to another version" in p.allowed


def test_a_mirror_to_an_undeclared_version_is_refused():
    def edit(data):
        staging_routes(data)[2]["mirror"] = {"version": "v9"}

    p = problem(refusal("staging", edit), f"{CHECKOUT}.routes[2].mirror.version")
    assert "must be a version declared" in p.allowed


def _fault_on_payments(data: dict[str, Any], **route: Any) -> None:
    traffic(data, "payments").update(
        {
            "versions": {"v1": {"version": "v1"}},
            "routes": [
                {
                    "destinations": [{"version": "v1"}],
                    "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": 1}},
                    **route,
                }
            ],
        }
    )


def test_faults_are_refused_in_production_unless_the_service_states_why():
    p = problem(refusal("production", _fault_on_payments), "services[2].traffic.routes[0].fault")
    assert "refused in production unless services[2].traffic.faultException states why" in (
        p.allowed
    )

    def allowed(data):
        _fault_on_payments(data)
        traffic(data, "payments")["faultException"] = "game day 2026-12-03, ticket OPS-42"

    accepted("production", allowed)
    accepted("staging", _fault_on_payments)


@pytest.mark.parametrize("field", ["timeout", "retries"])
def test_a_fault_route_relying_on_a_timeout_or_retries_is_refused(field):
    value = "5s" if field == "timeout" else {"attempts": 1, "perTryTimeout": "1s"}

    def edit(data):
        _fault_on_payments(data, **{field: value})

    p = problem(refusal("staging", edit), f"services[2].traffic.routes[0].{field}")
    assert "Istio applies no timeout or retries on a route with a fault" in p.allowed


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"abort": {"httpStatus": 700, "percentage": 5}}, "200-599"),
        ({"abort": {"grpcStatus": "OOPS", "percentage": 5}}, "grpcStatus must be one of"),
        ({"delay": {"fixedDelay": "soon", "percentage": 5}}, "must be a duration"),
        ({"delay": {"fixedDelay": "1s", "percentage": 0}}, "above 0"),
        ({}, "set delay, abort or both"),
    ],
)
def test_bad_faults_are_refused(fault, words):
    def edit(data):
        staging_routes(data)[0]["fault"] = fault

    error = refusal("staging", edit)
    assert any(p.key.startswith(f"{CHECKOUT}.routes[0].fault") for p in error.problems), error
    assert words in str(error)


# --- matches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "words"),
    [
        ({}, "a catch-all route has no `match` at all"),
        ({"headers": {"cookie": {"exact": "a=b"}}}, "`cookie: name=value`"),
        ({"headers": {"X-User": {"exact": "a"}}}, "lowercase"),
        ({"headers": {"x-user": {"exact": "a", "prefix": "b"}}}, "exactly one of exact"),
        ({"headers": {"x-user": {"regex": "(("}}}, "does not compile"),
        ({"cookie": "no-equals-sign"}, "name=value"),
        ({"uriPrefix": "api"}, "must start with '/'"),
        ({"method": "FETCH"}, "unknown HTTP method"),
    ],
)
def test_bad_matches_are_refused(match, words):
    def edit(data):
        staging_routes(data)[1]["match"] = [match]

    error = refusal("staging", edit)
    assert any(p.key.startswith(f"{CHECKOUT}.routes[1].match[0]") for p in error.problems)
    assert words in str(error)


def test_subsumption_is_what_istio_matching_implies():
    def m(**kw: Any) -> RouteMatch:
        return RouteMatch.model_validate(kw)

    assert subsumes(None, m(uriPrefix="/a"))
    assert subsumes(m(uriPrefix="/api"), m(uriPrefix="/api/cart", method="GET"))
    assert not subsumes(m(uriPrefix="/api/cart"), m(uriPrefix="/api"))
    assert subsumes(m(headers={"x": {"prefix": "be"}}), m(headers={"x": {"exact": "beta"}}))
    assert subsumes(m(headers={"x": {"regex": "b.*"}}), m(headers={"x": {"exact": "beta"}}))
    assert not subsumes(m(headers={"x": {"exact": "beta"}}), m(headers={"x": {"prefix": "b"}}))
    assert not subsumes(m(method="GET"), m(uriPrefix="/"))
    assert subsumes(m(cookie="a=1"), m(cookie="a=1", method="POST"))


# --- 1: exposure --------------------------------------------------------------------------


def test_a_host_the_gateway_does_not_serve_is_refused():
    def edit(data):
        service(data, "frontend")["ingress"]["hosts"] = ["shop.example.com", "api.example.com"]

    p = problem(refusal("production", edit), "services[0].ingress.hosts[1]")
    assert p.value == "api.example.com"
    assert "one of the public Gateway's hosts, ingress.hosts (shop.example.com, www" in p.allowed


def test_two_services_on_one_host_and_path_are_refused():
    def edit(data):
        service(data, "payments")["ingress"] = {"paths": ["/"], "hosts": ["www.example.com"]}

    p = problem(refusal("production", edit), "services[2].ingress.paths[0]")
    assert "on host www.example.com is already routed to 'frontend' (services[0])" in p.allowed


def test_two_services_on_one_host_with_distinct_paths_are_routed_longest_first():
    def edit(data):
        service(data, "checkout")["ingress"] = {"paths": ["/api/"], "methods": ["GET"]}
        service(data, "checkout").pop("traffic")  # no canary: static routing

    from components.traffic.routing import public_virtual_services

    cfg = accepted("production", edit)
    (vs, _) = public_virtual_services(cfg.graph, cfg.ingress.hosts, cfg.traffic.resilience)
    names = [r["name"] for r in vs["spec"]["http"]]
    assert names == ["checkout-api", "frontend-root"]


# --- 7: canaries --------------------------------------------------------------------------


def test_a_canary_excludes_static_routes_for_its_host():
    def edit(data):
        traffic(data, "checkout").update(
            {
                "versions": {"v1": {"version": "v1"}},
                "routes": [{"destinations": [{"version": "v1"}]}],
            }
        )

    error = refusal("production", edit)
    for field in ("routes", "versions"):
        assert "Flagger owns the VirtualService" in problem(error, f"{CHECKOUT}.{field}").allowed


def test_a_canary_needs_an_slo_to_be_judged_by():
    def edit(data):
        traffic(data, "frontend")["canary"] = {}

    p = problem(refusal("production", edit), "services[0].traffic.canary")
    assert "needs an SLO objective for service 'frontend' in slos.objectives" in p.allowed


def test_a_canary_needs_a_label_flagger_selects_on():
    def edit(data):
        service(data, "checkout")["selector"] = {"component": "checkout"}

    p = problem(refusal("production", edit), "services[1].selector")
    assert "app, name, app.kubernetes.io/name" in p.allowed


def test_a_service_named_like_flaggers_generated_one_is_refused():
    def edit(data):
        extra = copy.deepcopy(service(data, "payments"))
        extra.update(name="checkout-primary", serviceAccount="checkout-primary")
        extra.pop("traffic", None)
        data["services"].append(extra)

    p = problem(refusal("production", edit), "services[1].name")
    assert "Flagger generates the Service 'checkout-primary'" in p.allowed


@pytest.mark.parametrize(
    ("canary", "key", "words"),
    [
        ({"kind": "ab"}, "canary.match", "needs the header or cookie match"),
        ({"match": [{"cookie": "a=b"}]}, "canary.match", "only an 'ab' canary routes by match"),
        (
            {"kind": "ab", "match": [{"uriPrefix": "/beta"}]},
            "canary.match[0]",
            "headers and cookies only",
        ),
        (
            {"kind": "ab", "match": [{"headers": {"x-beta": {"regex": ".*"}}}]},
            "canary.match[0].headers.x-beta",
            "use exact or prefix",
        ),
        (
            {"analysis": {"stepWeight": 60}},
            "canary.analysis.stepWeight",
            "must not exceed maxWeight (50)",
        ),
        ({"analysis": {"interval": "90ms"}}, "canary.analysis.interval", "whole seconds"),
    ],
)
def test_bad_canaries_are_refused(canary, key, words):
    def edit(data):
        traffic(data, "checkout")["canary"] = canary

    error = refusal("production", edit)
    assert words in problem(error, f"{CHECKOUT}.{key}").allowed


def test_a_mirror_canary_of_a_service_that_takes_writes_is_refused():
    """Flagger mirrors every request to the canary, which serves it for real: checkout's POSTs
    (orders, payments) would all happen twice."""

    def edit(data):
        traffic(data, "checkout")["canary"] = {"kind": "mirror"}

    p = problem(refusal("production", edit), f"{CHECKOUT}.canary.kind")
    assert "checkout accepts POST: each would happen twice" in p.allowed

    def reads_only(data):
        # qps 20: production mirrors half of the load test to the canary (checked below).
        traffic(data, "checkout")["canary"] = {"kind": "mirror", "loadTest": {"qps": 20}}
        for caller in service(data, "checkout")["callers"]:
            caller["methods"] = ["GET"]

    accepted("production", reads_only)


def test_a_mirror_canary_counts_only_the_mirrored_share_of_its_load_test():
    """A mirror canary's load test calls the service and Flagger copies `mirrorWeight` % to
    the canary (production: 50): qps 10 x 2 x 50 s is 500 requests at the canary, where one
    failure is a burn rate of 2 against 99.9%."""

    def mirror(qps, weight=None):
        def edit(data):
            canary = {"kind": "mirror", "loadTest": {"qps": qps}}
            if weight is not None:
                canary["analysis"] = {"mirrorWeight": weight}
            traffic(data, "checkout")["canary"] = canary
            for caller in service(data, "checkout")["callers"]:
                caller["methods"] = ["GET"]

        return edit

    p = problem(refusal("production", mirror(10)), f"{CHECKOUT}.canary.loadTest.qps")
    assert "50% of them mirrored to the canary" in p.allowed and "a burn rate of 2 " in p.allowed
    assert "Use qps 20 or more" in p.allowed
    accepted("production", mirror(20))
    accepted("production", mirror(10, weight=100))
    refusal("production", mirror(19))


def test_a_grpc_only_canary_needs_its_own_load_test():
    def edit(data):
        traffic(data, "payments")["canary"] = {}

    p = problem(refusal("production", edit), "services[2].traffic.canary.loadTest.cmd")
    assert "ghz" in p.allowed

    def with_cmd(data):
        traffic(data, "payments")["canary"] = {
            "loadTest": {"method": "POST", "path": "/payments.v1.Payments/", "cmd": "ghz ..."}
        }

    accepted("production", with_cmd)


@pytest.mark.parametrize(
    ("load_test", "analysis", "refused", "words"),
    [
        # 1 x 1 x 50 s = 50 requests: one 5xx against 99.9% is a burn rate of 20.
        ({"qps": 1, "concurrency": 1}, {}, True, "a burn rate of 20 against"),
        # 9 x 2 x 50 s = 900: one failure is 1.11 times the budget; 10 per worker is enough.
        ({"qps": 9}, {}, True, "Use qps 10 or more"),
        # Exactly the budget (1000 requests, 99.9%) is within maxBurnRate 1: accepted.
        ({"qps": 10}, {}, False, ""),
        # The same test is enough for a laxer threshold, and for a longer interval.
        ({"qps": 5}, {"maxBurnRate": 2}, False, ""),
        ({"qps": 5}, {"interval": "2m"}, False, ""),
        ({"qps": 5}, {"maxBurnRate": 1.5}, True, "above maxBurnRate 1.5"),
        # A command of the user's own sends what it sends: not counted.
        (
            {"qps": 1, "concurrency": 1, "cmd": "hey -z 50s http://checkout-canary.shop:8080/"},
            {},
            False,
            "",
        ),
    ],
)
def test_a_load_test_too_small_for_one_failure_is_refused(load_test, analysis, refused, words):
    """With fewer requests per interval than 1 / (error budget x maxBurnRate), a single failed
    request fails a check on its own; the message says the rate that is enough."""

    def edit(data):
        canary = traffic(data, "checkout")["canary"]
        canary["loadTest"].update(load_test)
        canary["analysis"] = analysis

    key = f"{CHECKOUT}.canary.loadTest.qps"
    if refused:
        p = problem(refusal("production", edit), key)
        assert p.value == load_test["qps"]
        assert words in p.allowed and "a single error would fail a check" in p.allowed
    else:
        accepted("production", edit)


def test_a_load_test_is_accepted_exactly_when_one_failure_stays_within_the_burn_rate():
    """Over a grid of load tests and analyses of production's checkout (99.9% available, 99%
    fast): accepted if and only if one failed request among those `hey` sends in a run
    (qps per worker x workers x run seconds, the run 10 s shorter than the interval) is a burn
    rate at most maxBurnRate for the stricter SLI."""
    from fractions import Fraction

    run_seconds = {"30s": 20, "1m": 50, "2m": 110}
    strictest_budget = Fraction(1, 1000)
    seen = set()
    for qps, workers, interval, burn in itertools.product(
        (1, 4, 5, 10, 20), (1, 2, 3), run_seconds, ("1", "1.5", "2")
    ):
        sent = qps * workers * run_seconds[interval]

        def edit(data, qps=qps, workers=workers, interval=interval, burn=burn):
            canary = traffic(data, "checkout")["canary"]
            canary["loadTest"].update(qps=qps, concurrency=workers)
            canary["analysis"] = {"interval": interval, "maxBurnRate": float(burn)}

        data, secrets = raw_config("production")
        edit(data)
        try:
            config.parse(data, secrets)
            verdict = True
        except ConfigError as error:
            assert [p.key for p in error.problems] == [f"{CHECKOUT}.canary.loadTest.qps"]
            verdict = False
        tolerated = Fraction(1, sent) / strictest_budget <= Fraction(burn)
        assert verdict == tolerated, (qps, workers, interval, burn, sent)
        seen.add(verdict)
    assert seen == {True, False}


def test_a_canaried_exposed_service_takes_its_whole_host():
    def edit(data):
        traffic(data, "frontend")["canary"] = {}
        data["slos"]["objectives"].append(
            {
                "name": "frontend-availability",
                "service": "frontend",
                "namespace": "shop",
                "availability": 99.9,
                "runbookUrl": "https://runbooks.example.com/frontend",
            }
        )
        service(data, "payments")["ingress"] = {"paths": ["/pay"], "hosts": ["www.example.com"]}

    p = problem(refusal("production", edit), "services[2].ingress")
    assert "routed by Flagger's VirtualService of the canaried service 'frontend'" in p.allowed


def test_production_flagger_is_ha_while_canaries_exist():
    def edit(data):
        data["traffic"] = {"flagger": {"replicas": 1}}

    p = problem(refusal("production", edit), "traffic.flagger.replicas")
    assert "at least 2 in production" in p.allowed


def test_a_refused_traffic_config_registers_nothing(tmp_path):
    cfg = stack_config("staging")
    services = copy.deepcopy(cfg["service-mesh:services"])
    services[1]["traffic"]["routes"][1]["destinations"][0]["version"] = "v3"
    run = run_config(tmp_path, "staging", {**cfg, "service-mesh:services": services})
    assert isinstance(run.error, ConfigError) and run.resources == []
    assert f"service-mesh:{CHECKOUT}.routes[1].destinations[0].version = 'v3'" in str(run.error)
