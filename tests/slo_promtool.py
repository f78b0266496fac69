"""Generated promtool unit tests for the SLO rules in `components/slo/rules.py`: for every
objective and SLI, synthetic Istio traffic shows that (a) a full outage pages within 5 minutes
(or as fast as the 1h/14.4x tier allows for low targets) and stops paging once the short
windows recover, (b) a burn just under each page threshold does not page while just over does,
(c) a slow burn raises a ticket and no page, and (d) no traffic raises nothing. Decoy series
(the client-side reporter, other services, and for latency this service's failed requests) burn
their whole budget throughout, so a loose selector fails the tests. Availability failures arrive
as 5xx, as gRPC errors behind HTTP 200 and as both at once, so a missed or double-counted kind
fails them too.

`PromtoolRuns` runs the cases of the whole session in a few promtool processes, each over many
files, started in the background once the tests are collected (promtool takes seconds per case;
the Python tests meanwhile run on the other core); each file's section of promtool's output is
that case's verdict, so a case still passes or fails on its own."""

from __future__ import annotations

import collections
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import groupby
from pathlib import Path
from typing import Any

import yaml

from components.slo.config import BURN_TIERS, ISTIO_DURATION_BUCKETS_MS, SloObjective, envoy_le
from components.slo.rules import (
    ALERT_FOR,
    Sli,
    alert_annotations,
    alert_labels,
    alert_name,
    budget,
    num,
    sli_labels,
    slis,
)

RULE_FILE = "slo-rules.yml"
PER_MINUTE = Decimal(100_000)  # requests a minute at the destination, about 1.7k rps
BASE_BURN = Decimal("0.5")  # healthy background: half the allowed error rate
PAGE_FOR = int(ALERT_FOR["page"].removesuffix("m"))
FAST, SLOW = (t for t in BURN_TIERS if t.severity == "page")

Phase = tuple[int, Decimal | None]  # minutes, error ratio (None: no requests at all)


@dataclass
class Scenario:
    name: str
    phases: list[Phase]
    alerts: list[tuple[int, str, bool]] = field(default_factory=list)  # minute, severity, fires
    exprs: list[tuple[int, str, int | None]] = field(default_factory=list)  # None: no sample
    # From this minute every pod of the service is gone: its server-side series end (a
    # staleness marker, then nothing) and the clients' sidecars answer each request 503 UH.
    gone_after: int | None = None


def page_deadline(target: float) -> int:
    """Minutes from the start of a full outage to the page: the 1h window must hold enough
    outage minutes to exceed 14.4x (over a background of BASE_BURN), then `for` elapses."""
    b = float(budget(target))
    minutes = math.floor(60 * b * (FAST.factor - float(BASE_BURN)) / (1 - float(BASE_BURN) * b))
    return max(5, minutes + 1 + PAGE_FOR + 1)


def _scenarios(sli: Sli, sel: str) -> list[Scenario]:
    """Timelines in minutes. Windows longer than the data see all of it (counters start at 0,
    so Prometheus does not extrapolate), which keeps every ratio exact and the tests short."""
    b = budget(sli.target)
    base = BASE_BURN * b

    def burn(factor: float, scale: str = "1") -> Decimal:
        return Decimal(str(factor)) * Decimal(scale) * b

    deadline = page_deadline(sli.target)
    outage = deadline + 5
    recovered = 60 + outage + 31  # both short windows (5m, 30m) are clean again
    in_1h = min(outage, 29)  # outage minutes still inside the 1h window then
    remaining = f"abs(slo:period_error_budget_remaining:ratio{sel} - {num(1 - BASE_BURN)})"
    out = [
        Scenario(
            "full outage pages, and stops once the short windows recover",
            [(60, base), (outage, Decimal(1)), (35, base)],
            [(60, "page", False), (60 + deadline, "page", True), (recovered, "page", False)],
            [
                (60, f"{remaining} < bool 0.001", 1),
                (60 + deadline, f"slo:sli_error:ratio_rate5m{sel}", 1),
            ],
        ),
        Scenario(
            "no traffic raises nothing",
            [(120, None)],
            [(m, sev, False) for m in (10, 60, 120) for sev in ("page", "ticket")],
            [
                (60, f"slo:sli_error:ratio_rate5m{sel}", None),
                (120, f"slo:sli_error:ratio_rate1h{sel}", None),
                (120, f"slo:period_error_budget_remaining:ratio{sel}", None),
            ],
        ),
        # 2x: under the 3x (1d/2h) tier, over the 1x (3d/6h) tier once 6h holds > 1x.
        Scenario(
            "slow burn (2x) tickets and does not page",
            [(60, base), (120, burn(2))],
            [
                (60, "ticket", False),
                (120, "ticket", True),
                (180, "ticket", True),
                (120, "page", False),
                (180, "page", False),
            ],
        ),
        Scenario(
            "healthy traffic without a single error",
            [(60, Decimal(0))],
            [(60, "page", False), (60, "ticket", False)],
            [
                (60, f"slo:sli_error:ratio_rate5m{sel}", 0),
                (60, f"slo:period_error_budget_remaining:ratio{sel}", 1),
            ],
        ),
        Scenario(
            "burn under 1x raises nothing",
            [(60, base), (120, burn(0.9))],
            [(m, sev, False) for m in (120, 180) for sev in ("page", "ticket")],
        ),
    ]
    if sli.kind == "availability":
        out.append(
            Scenario(
                "every pod gone: the clients' 503s (no healthy upstream) page",
                [(60, base), (outage, Decimal(1))],
                [(60, "page", False), (60 + deadline, "page", True)],
                [(60 + deadline, f"slo:sli_error:ratio_rate5m{sel}", 1)],
                gone_after=60,
            )
        )
    if (in_1h + (60 - in_1h) * base) / 60 > Decimal(str(FAST.factor)) * b:
        # The long windows alone would still page: the short ones are what resets it.
        out[0].exprs.append(
            (recovered, f"slo:sli_error:ratio_rate1h{sel} > bool ({FAST.factor:g} * {num(b)})", 1)
        )
    for scale, fires in (("0.995", False), ("1.005", True)):
        word = "over" if fires else "under"
        # 2h at base then 65m at the burn: the 1h window fills (just over: true from minute 60,
        # fires at 62) while the 6h one stays under 6x. Not firing at minute 50 pins the 1h.
        out.append(
            Scenario(
                f"burn just {word} {FAST.factor:g}x over 1h",
                [(120, base), (65, burn(FAST.factor, scale))],
                [(170, "page", False), (183, "page", fires), (185, "page", fires)],
            )
        )
        # 1m at base then the burn: the 6h window passes 6x at minute 185 (just over) while
        # the 1h window stays far under 14.4x. Not firing at minute 160 pins the 6h window.
        out.append(
            Scenario(
                f"burn just {word} {SLOW.factor:g}x over 6h",
                [(1, base), (219, burn(SLOW.factor, scale))],
                [(160, "page", False), (210, "page", fires), (220, "page", fires)],
            )
        )
    return out


def _values(increments: list[Decimal], start: Decimal = Decimal(0)) -> str:
    """promtool expanding notation of a counter with these per-minute increments."""
    parts, value = [], start
    for i, (inc, run) in enumerate((k, len(list(g))) for k, g in groupby(increments)):
        if i == 0:
            parts.append(f"{num(value)}+{num(inc)}x{run}")
        elif run == 1:
            parts.append(num(value + inc))
        else:
            parts.append(f"{num(value + inc)}+{num(inc)}x{run - 1}")
        value += inc * run
    return " ".join(parts)


def _series(metric: str, labels: dict[str, str]) -> str:
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _input_series(
    o: SloObjective,
    sli: Sli,
    phases: list[Phase],
    services: Sequence[str] = (),
    gone_after: int | None = None,
) -> list[dict[str, str]]:
    """Destination-reported traffic for the objective plus decoys that fail everything.

    The failures come from one workload and the successes from another, as in a rollout. For
    a canaried service (`services`: the Services in front of its pods, the canary's last) the
    failing workload is the canary behind `<name>-canary` and the successes are the primary's,
    reported half under `<name>` and half under `<name>-primary`; so a rule that selected the
    service's own name alone would miss the failures, and one that selected only some of the
    names would miss traffic."""
    reported = tuple(services) or (o.service,)
    canaried = len(reported) > 1
    healthy = (f"{o.service}-primary", reported[:-1]) if canaried else (f"{o.service}-v1", reported)
    failing = (o.service, reported[-1:]) if canaried else (f"{o.service}-v2", reported)
    minutes = [ratio for length, ratio in phases for _ in range(length)]
    total = [Decimal(0) if r is None else PER_MINUTE for r in minutes]
    bad = [Decimal(0) if r is None else PER_MINUTE * r for r in minutes]
    good = [t - x for t, x in zip(total, bad, strict=True)]
    start = Decimal(5000) if phases[0][1] is None else Decimal(0)  # idle, not new, counters
    all_bad = [PER_MINUTE] * len(minutes)
    none = [Decimal(0)] * len(minutes)
    who = {"source_workload": "frontend", "source_workload_namespace": o.namespace}
    dest = {"destination_service_name": o.service, "destination_service_namespace": o.namespace}
    decoys = [
        {"reporter": "source", **who, **dest},
        {"reporter": "destination", **who, **dest, "destination_service_name": f"{o.service}-x"},
        {"reporter": "destination", **who, **dest, "destination_service_namespace": "other"},
    ]
    out: list[tuple[str, list[Decimal], Decimal]] = []
    own: set[int] = set()  # indices into `out` of the service's own server-side series

    def mine(metric: str, labels: dict[str, str], incs: list[Decimal], failed: bool) -> None:
        """The objective's own requests, under each Service their workload is behind (an
        even split: halves stay exact decimals)."""
        workload, names = failing if failed else healthy
        share = Decimal(len(names))
        for name in names:
            own.add(len(out))
            series = {
                "reporter": "destination",
                **who,
                **dest,
                "destination_service_name": name,
                "destination_workload": workload,
                **labels,
            }
            out.append((_series(metric, series), [i / share for i in incs], start / share))

    if sli.kind == "availability":
        metric = "istio_requests_total"
        ok = {"response_code": "200"}
        grpc_ok = {**ok, "grpc_response_status": "0"}
        # Successes and client errors (a 404, a gRPC NOT_FOUND) spend no budget.
        mine(metric, ok, [g * 97 / 100 for g in good], failed=False)
        mine(metric, grpc_ok, [g / 100 for g in good], failed=False)
        mine(metric, {"response_code": "404"}, [g / 100 for g in good], failed=False)
        mine(metric, {**ok, "grpc_response_status": "5"}, [g / 100 for g in good], failed=False)
        # Failures: a 503, a gRPC UNAVAILABLE behind HTTP 200, and one series that is both (it
        # must count once).
        mine(metric, {"response_code": "503"}, [x / 2 for x in bad], failed=True)
        mine(metric, {**ok, "grpc_response_status": "14"}, [x / 4 for x in bad], failed=True)
        both = {"response_code": "503", "grpc_response_status": "14"}
        mine(metric, both, [x / 4 for x in bad], failed=True)
        out += [(_series(metric, {**d, "response_code": "503"}), all_bad, start) for d in decoys]
    else:
        assert o.latency is not None
        metric = "istio_request_duration_milliseconds_bucket"
        i = ISTIO_DURATION_BUCKETS_MS.index(o.latency.threshold_ms)
        lower = ISTIO_DURATION_BUCKETS_MS[i - 1] if i > 0 else None
        upper = ISTIO_DURATION_BUCKETS_MS[i + 1] if i + 1 < len(ISTIO_DURATION_BUCKETS_MS) else None
        # Fast successes from the healthy workload; the slow ones (half just over the
        # threshold, half beyond the next bucket) from the failing one.
        buckets = [
            (lower, [g / 2 for g in good], none),
            (o.latency.threshold_ms, good, none),
            (upper, good, [x / 2 for x in bad]),
            ("+Inf", good, bad),
        ]
        ok = {"response_code": "200"}
        for le, fast, slow in buckets:
            if le is not None:
                le_text = le if isinstance(le, str) else envoy_le(le)
                mine(metric, {**ok, "le": le_text}, fast, failed=False)
                mine(metric, {**ok, "le": le_text}, slow, failed=True)
        threshold = envoy_le(o.latency.threshold_ms)
        # Failed requests of this very service, all slow: they spend the availability budget,
        # not the latency one.
        base = {"reporter": "destination", **who, **dest, **ok}
        failed = [{**base, "response_code": "503"}, {**base, "grpc_response_status": "14"}]
        for d in decoys + failed:
            out.append((_series(metric, {**d, "le": threshold}), none, start))
            out.append((_series(metric, {**d, "le": "+Inf"}), all_bad, start))
    if gone_after is not None:
        return _pods_gone(o, out, own, minutes, gone_after, who, dest)
    # Envoy exports a label combination only once it has been seen: no 5xx, no 5xx series.
    return [
        {"series": s, "values": _values(incs, first)}
        for s, incs, first in out
        if first or any(incs)
    ]


def _pods_gone(
    o: SloObjective,
    out: list[tuple[str, list[Decimal], Decimal]],
    own: set[int],
    minutes: list[Decimal | None],
    gone_after: int,
    who: dict[str, str],
    dest: dict[str, str],
) -> list[dict[str, str]]:
    """The service's server-side series end at `gone_after` (a staleness marker, as when its
    pods are deleted); from then each request is the client sidecar's 503 with flag UH
    (`reporter="source"`), the only report left. Decoys go on: the other services' and a
    client-reported UH of another service, which must not count."""
    series = []
    for i, (name, incs, first) in enumerate(out):
        if i in own:
            if first or any(incs[:gone_after]):
                series.append(
                    {"series": name, "values": _values(incs[:gone_after], first) + " stale"}
                )
        elif first or any(incs):
            series.append({"series": name, "values": _values(incs, first)})
    after = [Decimal(0) if r is None else PER_MINUTE for r in minutes[gone_after:]]
    uh = {"response_code": "503", "response_flags": "UH"}
    unreached = {"reporter": "source", **who, **dest, **uh}
    other = {**unreached, "destination_service_name": f"{o.service}-x"}
    series.append(
        {
            "series": _series("istio_requests_total", unreached),
            "values": f"_x{gone_after} {_values(after)}",
        }
    )
    series.append(
        {
            "series": _series("istio_requests_total", other),
            "values": _values([PER_MINUTE] * len(minutes)),
        }
    )
    return series


def _test_group(
    o: SloObjective, sli: Sli, sc: Scenario, environment: str, services: Sequence[str] = ()
) -> dict[str, Any]:
    rec = ",".join(f'{k}="{v}"' for k, v in sli_labels(o, sli).items())  # recorded series
    alerts = []
    for minute, severity, fires in sc.alerts:
        expected = {
            "exp_labels": alert_labels(o, sli, severity, environment),
            "exp_annotations": alert_annotations(o, sli, severity),
        }
        alerts.append(
            {
                "eval_time": f"{minute}m",
                "alertname": alert_name(sli.kind, severity),
                "exp_alerts": [expected] if fires else [],
            }
        )
    exprs = []
    for minute, expr, value in sc.exprs:
        metric = "" if " bool " in expr else expr.split("{")[0]
        samples = [] if value is None else [{"labels": metric + "{" + rec + "}", "value": value}]
        exprs.append({"expr": expr, "eval_time": f"{minute}m", "exp_samples": samples})
    group: dict[str, Any] = {
        "name": f"{o.name} {sli.kind}: {sc.name}",
        "interval": "1m",
        "input_series": _input_series(o, sli, sc.phases, services, sc.gone_after),
        "alert_rule_test": alerts,
    }
    if exprs:
        group["promql_expr_test"] = exprs
    return group


def promtool_tests(
    objectives: Sequence[SloObjective],
    environment: str,
    rule_file: str = RULE_FILE,
    services: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A `promtool test rules` file exercising every objective's alerts against `rule_file`
    (written from `slo.promtool_rule_file`). `services`: per service name, the Services its
    requests are reported under (`MeshService.service_names`)."""
    found = services or {}
    tests = []
    for o in objectives:
        reported = found.get(o.service, ())
        for sli in slis(o):
            sel = f'{{slo="{o.name}",sli="{sli.kind}"}}'
            tests += [_test_group(o, sli, sc, environment, reported) for sc in _scenarios(sli, sel)]
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


# --- running promtool: many files per process, in the background ------------------------------

PROMTOOL = shutil.which("promtool") or "promtool"  # Debian's prometheus package (.ci/run)
TEST_FILE = "slo-tests-{part}.yml"
# promtool starts each file's report with one of these lines, naming the file as it was given.
_HEADERS = ("Unit Testing:  ", "Checking ")
# The Go runtime of every promtool process: one thread (the workers already fill the cores) and
# a collector that lets the heap grow eightfold between collections. With the defaults a sixth
# of promtool's CPU went to collecting; a process now peaks at about 250 MB instead of 70 MB.
PROMTOOL_ENV = {"GOMAXPROCS": "1", "GOGC": "800"}
_UNITS = {"ms": 1 / 60_000, "s": 1 / 60, "m": 1, "h": 60, "d": 1440, "w": 10080, "y": 525_600}


def minutes(duration: str) -> float:
    """A Prometheus duration ("185m", "1h30m", "90s") in minutes."""
    return sum(
        float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|[smhdwy])", duration)
    )


@dataclass(frozen=True)
class Job:
    """One promtool case: a rule file (`promtool check rules`) and, unless None, a test file
    for it (`promtool test rules`, its `rule_files` naming `RULE_FILE`)."""

    rules: dict[str, Any]
    tests: dict[str, Any] | None = None

    def costs(self) -> list[float]:
        """Roughly what promtool spends on each test group: it evaluates every rule of the file
        at every step (`evaluation_interval`) up to the group's last `eval_time`."""
        if self.tests is None:
            return []
        rules = max(1, sum(len(g["rules"]) for g in self.rules["groups"]))
        step = minutes(str(self.tests.get("evaluation_interval", "1m"))) or 1
        out = []
        for group in self.tests["tests"]:
            cases = [*group.get("alert_rule_test", []), *group.get("promql_expr_test", [])]
            last = max((minutes(str(c.get("eval_time", "0s"))) for c in cases), default=0)
            out.append((last / step + 1) * rules)
        return out

    def parts(self, budget: float) -> list[tuple[float, dict[str, Any]]]:
        """The test file cut into as few runs of consecutive groups as keep each near `budget`
        (costs about equal), with their costs. promtool evaluates each test group on storage
        of its own, so a group's verdict does not depend on the file it is in; the parts
        together are the file."""
        assert self.tests is not None
        groups, costs = self.tests["tests"], self.costs()
        total = sum(costs)
        count = max(1, math.ceil(total / budget)) if budget > 0 else 1
        out: list[tuple[float, dict[str, Any]]] = []
        start, done, spent = 0, 0.0, 0.0
        for i, cost in enumerate(costs):
            if i > start and done >= total * (len(out) + 1) / count:
                out.append((spent, {**self.tests, "tests": groups[start:i]}))
                start, spent = i, 0.0
            done += cost
            spent += cost
        out.append((spent, {**self.tests, "tests": groups[start:]}))
        return out


@dataclass(frozen=True)
class Outcome:
    """promtool's verdict on one file, read from its section of the shared run's output; on a
    case whose test file was cut into parts, every part's, their sections in order."""

    ok: bool
    output: str


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Outcome | None = None

    def set(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()


class PromtoolRuns:
    """Runs many promtool cases in few `promtool check rules` / `promtool test rules`
    invocations (each over several files), started in the background as soon as the cases are
    known (`tests/conftest.py` submits them once the tests are collected) by one worker per
    core, niced, so that promtool works on the other core while the Python tests run. Each
    file's section of the output is its own verdict, so each case still passes or fails on its
    own. A long test file is cut into parts (`Job.parts`) and the parts are queued longest
    first, so that the workers finish together instead of one running the longest file last."""

    # Invocations per worker a submission is cut into: few processes, yet a worker that drew
    # the slow cases does not keep the others idle at the end.
    CHUNKS_PER_WORKER = 3

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.root = Path(tempfile.mkdtemp(prefix="promtool-runs-"))
        self._pending: dict[str, _Pending] = {}  # by file, as given to promtool
        self._files: dict[tuple[str, str], list[str]] = {}  # (case, kind) -> its files
        self._queue: collections.deque[tuple[str, list[str]]] = collections.deque()
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._closed = False
        self._count = 0

    def _file(self, key: str, kind: str, path: Path, data: dict[str, Any]) -> str:
        path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))
        self._pending[str(path)] = _Pending()
        self._files.setdefault((key, kind), []).append(str(path))
        return str(path)

    def submit(self, jobs: dict[str, Job]) -> None:
        """Write each case's files and queue promtool on them, the costliest tests first; a key
        submitted before is kept as it was."""
        with self._cond:
            new = {k: j for k, j in jobs.items() if (k, "check") not in self._files}
            total = sum(sum(job.costs()) for job in new.values())
            budget = total / (self.workers * self.CHUNKS_PER_WORKER)
            checks: list[str] = []
            tests: list[tuple[float, str]] = []
            for key, job in new.items():
                where = self.root / f"case-{self._count}"
                self._count += 1
                where.mkdir()
                checks.append(self._file(key, "check", where / RULE_FILE, job.rules))
                if job.tests is None:
                    continue
                for i, (cost, part) in enumerate(job.parts(budget), 1):
                    path = where / TEST_FILE.format(part=i)
                    tests.append((cost, self._file(key, "test", path, part)))
            if checks:
                self._queue.append(("check", checks))
            tests.sort(key=lambda t: -t[0])  # stable: equal costs keep their order
            chunk: list[str] = []
            spent = 0.0
            for cost, path in tests:
                if chunk and spent + cost > budget:
                    self._queue.append(("test", chunk))
                    chunk, spent = [], 0.0
                chunk.append(path)
                spent += cost
            if chunk:
                self._queue.append(("test", chunk))
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, daemon=True)
                thread.start()
                self._threads.append(thread)
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                kind, files = self._queue.popleft()
                proc = subprocess.Popen(
                    [PROMTOOL, kind, "rules", *files],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,  # one stream in promtool's order: sections whole
                    text=True,
                    env={**os.environ, **PROMTOOL_ENV},
                    preexec_fn=lambda: os.nice(10),  # the Python tests keep their core
                )
                self._procs.append(proc)
            self._read(proc, {path: self._pending[path] for path in files})

    @staticmethod
    def _read(proc: subprocess.Popen[str], by_path: dict[str, _Pending]) -> None:
        current: _Pending | None = None
        lines: list[str] = []
        output: list[str] = []

        def close() -> None:
            if current is not None:
                text = "".join(lines)
                ok = "SUCCESS" in text and "FAILED" not in text
                current.set(Outcome(ok, text))

        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            header = next((h for h in _HEADERS if line.startswith(h)), None)
            path = line[len(header) :].strip() if header else None
            if path in by_path:
                close()
                current, lines = by_path.pop(path), [line]
            else:
                lines.append(line)
        code = proc.wait()
        close()
        for pending in by_path.values():  # promtool stopped before it reached these files
            pending.set(Outcome(False, f"promtool exited {code} first:\n" + "".join(output)))

    def outcome(self, key: str, kind: str) -> Outcome:
        """The verdict on case `key`'s rule file (`kind` "check") or test file ("test"): on
        every part of it, their sections in order."""
        found = []
        for path in self._files[(key, kind)]:
            pending = self._pending[path]
            if not pending.done.wait(timeout=900):
                raise TimeoutError(f"promtool {kind} of {key!r} did not finish in 15 minutes")
            assert pending.outcome is not None
            found.append(pending.outcome)
        return Outcome(all(o.ok for o in found), "".join(o.output for o in found))

    def close(self) -> None:
        """Stop what still runs or waits (tests that were deselected or failed early) and
        remove the files, all of which this runner made."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


_RUNS: PromtoolRuns | None = None


def runs() -> PromtoolRuns:
    """The session's runner (one per process: the test session)."""
    global _RUNS
    if _RUNS is None:
        _RUNS = PromtoolRuns()
    return _RUNS


class ModuleRuns:
    """The verdicts on one test module's cases (its keys, without the module prefix)."""

    def __init__(self, module: Any) -> None:
        self.prefix = f"{module.__name__}::"
        runs().submit(module_jobs(module))

    def check(self, key: str) -> Outcome:
        return runs().outcome(self.prefix + key, "check")

    def test(self, key: str) -> Outcome:
        return runs().outcome(self.prefix + key, "test")


def module_jobs(module: Any) -> dict[str, Job]:
    """The cases a test module declares in its `promtool_jobs()`, keyed under its name."""
    return {f"{module.__name__}::{k}": job for k, job in module.promtool_jobs().items()}


def close() -> None:
    if _RUNS is not None:
        _RUNS.close()
