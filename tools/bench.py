"""Benchmark of the offline plan: `python -m tools.bench [--sizes 250,1000] [--repeat 3]
[--compare REF] [--json FILE]`.

Generates valid production stacks of N services (`tools/bench_stacks.py`, proven valid by the
program's own config parser) into a temporary directory it creates and removes, and runs the
plan tool on each in a process of its own per measurement (so peak RSS and garbage collection
are per run), interleaved with the committed production stack, an empty program, an
imports-only program and a loaded-modules program under the same engine. Prints per case: wall,
CPU, peak RSS, resources, manifests, bytes, per-phase times and GC time (medians), the growth
ratio between the largest and the smallest N and the ratio to both floors. `--compare REF`
measures the same at a git ref in a temporary `git worktree` (removed afterwards; the checkout
is only read), round by round beside the working tree, and says whether both write
byte-identical plans.
Timings are never asserted anywhere: a shared 2-core machine is too noisy for that.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.base.model import ConfigError
from tools import bench_stacks
from tools.engine import ROOT

CHILD = Path(__file__).resolve().parent / "bench_child.py"
DEFAULT_SIZES = (250, 1000)
DEFAULT_REPEAT = 3
PHASES = ("startup", "read", "config", "program", "monitor", "render", "write", "gc")
# Phase meanings, printed under the tables.
PHASE_HELP = (
    "empty: the program replaced by nothing; imports: by the import statements of __main__.py; "
    "loaded: by importing every module a production run loads (pulumi_kubernetes loads its API "
    "groups on first use); x imports, x loaded: wall time over those floors. "
    "startup: importing the plan tool and its engine; read: the stack file into config strings; "
    "config: parsing and checking the config (components.config.load); program: the rest of "
    "the run (the program's imports, its code and Pulumi's registration work), of which "
    "monitor is the CPU the mock engine spends on each registration; render: the plan's text "
    "(JSON, YAML); write: the files and the swap; gc: collector pauses in all phases"
)


class BenchError(Exception):
    """A benchmark that cannot run as asked (a bad ref, a failing plan); exit 2 with this."""


@dataclass(frozen=True)
class Tree:
    """A source tree to measure: the working tree this tool is in, or a ref's worktree."""

    label: str
    root: Path


@dataclass(frozen=True)
class Case:
    """One row of the report: a program and the stack file it runs with."""

    name: str
    program: str  # plan, empty, imports
    stack: str
    stack_file: Path | None  # None: the tree's own Pulumi.<stack>.yaml
    services: int | None = None


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mib: float
    phases: dict[str, float]
    gc: dict[str, float]
    resources: int
    manifests: int
    bytes: int
    digest: str


@dataclass
class Cell:
    samples: list[Sample] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(getattr(s, key) for s in self.samples)

    def median_phase(self, key: str) -> float | None:
        found = [s.phases[key] for s in self.samples if key in s.phases]
        return statistics.median(found) if found else None

    def median_gc(self, key: str) -> float:
        return statistics.median(s.gc.get(key, 0.0) for s in self.samples)


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated service counts") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each size is a service count of 1 or more")
    return sizes


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a count of 1 or more")
    return value


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def add_worktree(ref: str, parent: Path) -> Tree:
    """A detached worktree of `ref` inside `parent` (ours): the checkout itself is not touched."""
    commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    path = parent / f"ref-{commit[:12]}"
    _git("worktree", "add", "--detach", "--quiet", str(path), commit)
    return Tree(f"{ref} ({commit[:9]})", path)


def remove_worktree(tree: Tree) -> None:
    """Remove a worktree this tool added (its directory and its entry in .git/worktrees)."""
    done = subprocess.run(
        ["git", "worktree", "remove", "--force", str(tree.root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(
            f"warning: could not remove the worktree {tree.root}: {done.stderr.strip()}; "
            f"remove it with `git worktree remove --force {tree.root}`",
            file=sys.stderr,
        )


def cases(sizes: tuple[int, ...], stacks_dir: Path) -> list[Case]:
    """The floors, the committed production stack, then a generated stack per size (each
    written into `stacks_dir` and proven valid with the program's config parser)."""
    out = [
        Case("empty", "empty", "production", None),
        Case("imports", "imports", "production", None),
        Case("loaded", "loaded", "production", None),
        Case("production", "plan", "production", None),
    ]
    for n in sizes:
        path = bench_stacks.write(stacks_dir, n)
        try:
            declared = bench_stacks.validate(path)
        except ConfigError as error:  # the generator lags behind the config models
            raise BenchError(f"the generated stack of {n} services is not valid: {error}") from None
        out.append(Case(f"n{n}", "plan", bench_stacks.stack_name(n), path, declared["services"]))
    return out


def _plan_facts(out: Path) -> tuple[int, int, int, str]:
    """Resources, manifests, bytes and a digest of every file of the plan in `out`."""
    digest = hashlib.sha256()
    size = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        size += len(data)
        digest.update(path.relative_to(out).as_posix().encode() + b"\0" + data + b"\0")
    resources = len(json.loads((out / "resources.json").read_text()))
    manifests = sum(1 for p in (out / "manifests").iterdir() if p.is_file())
    return resources, manifests, size, digest.hexdigest()


def _modules_file(tree: Tree, work: Path) -> Path:
    """Where the warm-up production run of `tree` lists the modules it loaded."""
    return work / f"modules-{hashlib.sha256(str(tree.root).encode()).hexdigest()[:12]}.txt"


def measure(
    tree: Tree, case: Case, work: Path, env: dict[str, str], record: bool = False
) -> Sample:
    """One run of `case` on `tree` in a new process; its plan is written into `work` (ours)
    and removed once counted. `record`: list the modules it loaded (for the `loaded` floor)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=work))
    out, report = run_dir / "plan", run_dir / "report.json"
    stack_file = case.stack_file or tree.root / f"Pulumi.{case.stack}.yaml"
    command = [
        sys.executable,
        str(CHILD),
        "--root",
        str(tree.root),
        "--program",
        case.program,
        "--stack",
        case.stack,
        "--stack-file",
        str(stack_file),
        "--out",
        str(out),
        "--report",
        str(report),
    ]
    if case.program == "loaded":
        command += ["--modules", str(_modules_file(tree, work))]
    if record:
        command += ["--record-modules", str(_modules_file(tree, work))]
    with (run_dir / "stderr").open("w") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command, cwd=tree.root, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not report.exists():
        text = (run_dir / "stderr").read_text().strip()
        raise BenchError(
            f"{case.name} on {tree.label} failed (exit {proc.returncode}): {text[-2000:]}"
        )
    child = json.loads(report.read_text())
    resources, manifests, size, digest = _plan_facts(out)
    shutil.rmtree(run_dir)
    return Sample(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=(child.get("peakRssKiB") or usage.ru_maxrss) / 1024,
        phases=_phases(child["phases"], child["gc"]),
        gc=child["gc"],
        resources=resources,
        manifests=manifests,
        bytes=size,
        digest=digest,
    )


def _phases(raw: dict[str, float], gc: dict[str, float]) -> dict[str, float]:
    """The child's timers as the report's phases (see PHASE_HELP)."""
    out = {k: raw[k] for k in ("startup", "read", "config", "monitor", "render") if k in raw}
    if "run" in raw:
        out["program"] = raw["run"] - raw.get("read", 0.0) - raw.get("config", 0.0)
    if "write" in raw:
        out["write"] = raw["write"] - raw.get("render", 0.0)
    out["gc"] = gc.get("seconds", 0.0)
    return out


def child_env(work: Path) -> dict[str, str]:
    """The children's environment: byte-code caches in our directory, never in a checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PULUMI"))}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def run(
    trees: list[Tree],
    all_cases: list[Case],
    repeat: int,
    work: Path,
    progress: Any = None,
) -> dict[tuple[str, str], Cell]:
    """Every case on every tree, `repeat` rounds, each round case by case with the trees side
    by side, so that noise from the machine falls on both alike. One unmeasured warm-up run
    per tree first fills the byte-code cache and lists the modules a production run loads."""
    env = child_env(work)
    by_name = {case.name: case for case in all_cases}
    for tree in trees:
        measure(tree, by_name["production"], work, env, record=True)
        measure(tree, by_name["loaded"], work, env)
    cells: dict[tuple[str, str], Cell] = {}
    for round_ in range(repeat):
        for case in all_cases:
            for tree in trees:
                sample = measure(tree, case, work, env)
                cells.setdefault((tree.label, case.name), Cell()).samples.append(sample)
                if progress:
                    progress(
                        f"round {round_ + 1}/{repeat} {case.name} {tree.label}: {sample.wall:.2f} s"
                    )
    return cells


def report(
    trees: list[Tree], all_cases: list[Case], cells: dict[tuple[str, str], Cell], repeat: int
) -> dict[str, Any]:
    """The report as data: per tree and case the medians, the ratios, and across trees the
    comparison; `format_report` prints it."""
    sizes = [c for c in all_cases if c.services is not None]
    trees_out = []
    for tree in trees:
        rows = []
        floor = cells[(tree.label, "imports")].median("wall")
        loaded = cells[(tree.label, "loaded")].median("wall")
        for case in all_cases:
            cell = cells[(tree.label, case.name)]
            first = cell.samples[0]
            rows.append(
                {
                    "case": case.name,
                    "program": case.program,
                    "services": case.services,
                    "wall": cell.median("wall"),
                    "cpu": cell.median("cpu"),
                    "rssMiB": cell.median("rss_mib"),
                    "resources": first.resources,
                    "manifests": first.manifests,
                    "bytes": first.bytes,
                    "phases": {p: cell.median_phase(p) for p in PHASES},
                    "gcCollections": cell.median_gc("collections"),
                    "gcFull": cell.median_gc("full"),
                    "toFloor": cell.median("wall") / floor,
                    "toLoaded": cell.median("wall") / loaded,
                    "stable": len({s.digest for s in cell.samples}) == 1,
                    "digest": first.digest,
                }
            )
        growth = None
        if len(sizes) >= 2:
            small, big = sizes[0], sizes[-1]
            cs, cb = cells[(tree.label, small.name)], cells[(tree.label, big.name)]
            growth = {
                "of": f"{big.name}/{small.name}",
                "wall": cb.median("wall") / cs.median("wall"),
                "services": big.services / small.services,
                "resources": cb.samples[0].resources / cs.samples[0].resources,
            }
        trees_out.append(
            {"tree": tree.label, "root": str(tree.root), "rows": rows, "growth": growth}
        )
    comparison = []
    if len(trees) == 2:
        (ref, cur) = trees[1], trees[0]
        for case in all_cases:
            a, b = cells[(ref.label, case.name)], cells[(cur.label, case.name)]
            comparison.append(
                {
                    "case": case.name,
                    "wall": [a.median("wall"), b.median("wall")],
                    "cpu": [a.median("cpu"), b.median("cpu")],
                    "rssMiB": [a.median("rss_mib"), b.median("rss_mib")],
                    "gc": [a.median_phase("gc"), b.median_phase("gc")],
                    "ratio": b.median("wall") / a.median("wall"),
                    "identical": a.samples[0].digest == b.samples[0].digest,
                }
            )
    return {
        "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "trees": trees_out,
        "comparison": comparison,
    }


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(data: dict[str, Any]) -> str:
    """Markdown tables: one per tree, then the side-by-side comparison."""
    lines = [
        f"medians of {data['repeat']} runs per cell, one process per run "
        f"({data['machine']['cpus']} CPUs, Python {data['machine']['python']})"
    ]
    head = (
        "| case | wall s | CPU s | peak RSS MiB | resources | manifests | MiB written | "
        + " | ".join(PHASES)
        + " | GC runs (full) | x imports | x loaded |"
    )
    for tree in data["trees"]:
        lines += ["", f"### {tree['tree']}", "", head, "|" + "---|" * (head.count("|") - 1)]
        for r in tree["rows"]:
            phases = " | ".join(_s(r["phases"][p]) for p in PHASES)
            lines.append(
                f"| {r['case']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rssMiB']:.0f} | "
                f"{r['resources']} | {r['manifests']} | {r['bytes'] / 2**20:.2f} | {phases} | "
                f"{r['gcCollections']:.0f} ({r['gcFull']:.0f}) | {r['toFloor']:.2f} | "
                f"{r['toLoaded']:.2f} |"
            )
        if tree["growth"]:
            g = tree["growth"]
            lines.append(
                f"\ngrowth {g['of']}: wall x{g['wall']:.2f} for x{g['services']:.1f} services "
                f"(x{g['resources']:.2f} resources)"
            )
        unstable = [r["case"] for r in tree["rows"] if not r["stable"]]
        if unstable:
            lines.append(f"\nWARNING: plans differ between runs of {', '.join(unstable)}")
    if data["comparison"]:
        ref, cur = data["trees"][1]["tree"], data["trees"][0]["tree"]
        lines += [
            "",
            f"### {cur} against {ref}",
            "",
            "| case | wall s (ref → now) | x | CPU s | peak RSS MiB | GC s | plan |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in data["comparison"]:
            same = "identical" if c["identical"] else "DIFFERS"
            lines.append(
                f"| {c['case']} | {c['wall'][0]:.2f} → {c['wall'][1]:.2f} | {c['ratio']:.2f} | "
                f"{c['cpu'][0]:.2f} → {c['cpu'][1]:.2f} | "
                f"{c['rssMiB'][0]:.0f} → {c['rssMiB'][1]:.0f} | "
                f"{_s(c['gc'][0])} → {_s(c['gc'][1])} | {same} |"
            )
    lines += ["", PHASE_HELP]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        default=DEFAULT_SIZES,
        metavar="N,N",
        help="service counts of the generated stacks (default "
        + ",".join(map(str, DEFAULT_SIZES))
        + ")",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=DEFAULT_REPEAT,
        help=f"runs per cell; medians are reported (default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also measure this git ref (in a temporary worktree), side by side",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the report as JSON to FILE (a new file; never overwritten)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.json is not None and (args.json.exists() or args.json.is_symlink()):
        print(f"error: --json {args.json} exists; refusing to overwrite it", file=sys.stderr)
        return 2
    if args.json is not None and not args.json.absolute().parent.is_dir():
        print(f"error: --json {args.json}: its directory does not exist", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="service-mesh-bench-"))
    trees = [Tree("working tree", ROOT)]
    progress = None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True)
    try:
        stacks_dir = work / "stacks"
        stacks_dir.mkdir()
        all_cases = cases(args.sizes, stacks_dir)
        if args.compare:
            trees.append(add_worktree(args.compare, work))
        cells = run(trees, all_cases, args.repeat, work, progress)
        data = report(trees, all_cases, cells, args.repeat)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for tree in trees[1:]:
            remove_worktree(tree)
        shutil.rmtree(work, ignore_errors=True)
    print(format_report(data))
    if args.json is not None:
        with args.json.open("x") as handle:
            json.dump(data, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
