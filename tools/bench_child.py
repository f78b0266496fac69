"""One measured run for `python -m tools.bench`, in a process of its own (so its peak RSS and its
garbage collections are its own): `python tools/bench_child.py --root TREE --program KIND
--stack NAME --stack-file FILE --out DIR --report FILE`.

It runs the plan tool of the tree at `--root` (`tools.plan.main`, exactly what
`python -m tools.plan` runs) with timers around its phases, put in place by replacing module
attributes, so the tree needs no change and a git ref older than the benchmark can be measured.
`--program empty` replaces `__main__.py` by nothing, `--program imports` by its import
statements only: the floors the real program is compared with, under the same engine. It writes
its timings as JSON to `--report` and exits with the plan tool's exit code. Run by path, not as
`-m`: the tree it measures may not have this file. `--program loaded` imports every module
a run of the real program had loaded (`--record-modules` of that run wrote their names): the
modules `__main__.py` names import more on first use (pulumi_kubernetes loads its API groups
lazily), so this floor is what any program that registers the same kinds of resources pays.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before anything else is imported
import ast  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

PROGRAMS = ("plan", "empty", "imports", "loaded")

_gc_started = 0.0
_gc: dict[str, float] = {"seconds": 0.0, "collections": 0, "full": 0, "fullSeconds": 0.0}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
        return
    spent = time.perf_counter() - _gc_started
    _gc["seconds"] += spent
    _gc["collections"] += 1
    if info.get("generation") == 2:
        _gc["full"] += 1
        _gc["fullSeconds"] += spent


gc.callbacks.append(_on_gc)


def _timed(phases: dict[str, float], key: str, func: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, paused = time.perf_counter(), _gc["seconds"]
        try:
            return func(*args, **kwargs)
        finally:
            phases[key] = phases.get(key, 0.0) + time.perf_counter() - started
            gc_key = f"{key}Gc"
            phases[gc_key] = phases.get(gc_key, 0.0) + _gc["seconds"] - paused

    return wrapper


def _peak_rss() -> int | None:
    """This process's peak resident memory (KiB) since it was exec'ed: `VmHWM`, unlike the
    rusage of a child, which keeps the high-water mark of the parent it was forked from."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _imports_only(main: str) -> None:
    """The import statements of `__main__.py`, nothing else: what the program costs before it
    registers anything."""
    tree = ast.parse(Path(main).read_text())
    body = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    code = compile(ast.Module(body=body, type_ignores=[]), main, "exec")
    exec(code, {"__name__": "__bench_imports__"})


def _loaded(names: list[str]) -> Any:
    """A program importing `names`, in the order a real run first loaded them."""

    def program(main: str) -> None:
        for name in names:
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except Exception:  # imports only in context: the floor is a little lower
                    continue

    return program


def _instrument(
    program: str, phases: dict[str, float], monitor: list[float], modules: list[str]
) -> None:
    from tools import engine, plan

    engine.read_stack_config = _timed(phases, "read", engine.read_stack_config)
    engine.attempt = _timed(phases, "run", engine.attempt)
    plan.run_stack = _timed(phases, "runStack", plan.run_stack)
    plan.render = _timed(phases, "render", plan.render)
    plan.write = _timed(phases, "write", plan.write)
    plan.summary = _timed(phases, "summary", plan.summary)

    make_monitor = engine._make_monitor

    def recording_monitor(mocks: Any, run: Any) -> Any:
        found = make_monitor(mocks, run)
        register = found.RegisterResource

        def timed_register(request: Any) -> Any:
            started = time.thread_time()  # CPU of this thread: the runtime calls from a pool
            try:
                return register(request)
            finally:
                monitor.append(time.thread_time() - started)

        found.RegisterResource = timed_register
        return found

    engine._make_monitor = recording_monitor
    real_program = engine._program

    def program_plan(main: str) -> None:
        import components.config as config

        config.load = _timed(phases, "config", config.load)
        real_program(main)

    engine._program = {
        "plan": program_plan,
        "empty": lambda main: None,
        "imports": _imports_only,
        "loaded": _loaded(modules),
    }[program]


def measure() -> None:
    parser = argparse.ArgumentParser(prog="tools/bench_child.py", description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--program", choices=PROGRAMS, required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--stack-file", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--modules", type=Path, help="for --program loaded: the module names")
    parser.add_argument("--record-modules", type=Path, help="write the modules loaded at the end")
    args = parser.parse_args()

    sys.path[0] = str(args.root.resolve())  # the measured tree, not this file's directory
    phases: dict[str, float] = {}
    monitor: list[float] = []
    started = time.perf_counter()
    import tools.plan

    phases["startup"] = time.perf_counter() - started
    modules = args.modules.read_text().split() if args.modules else []
    _instrument(args.program, phases, monitor, modules)
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            code = tools.plan.main(
                [args.stack, "--stack-file", str(args.stack_file), "--out", str(args.out)]
            )
        finally:
            sys.stdout = stdout
    phases["monitor"] = sum(monitor)
    phases["total"] = time.perf_counter() - _START
    report = {"exitCode": code, "phases": phases, "gc": dict(_gc), "peakRssKiB": _peak_rss()}
    args.report.write_text(json.dumps(report))
    if args.record_modules:
        skip = ("__main__", "__mp_main__", "__bench_imports__")
        names = [n for n in sys.modules if n not in skip]
        args.record_modules.write_text("\n".join(names) + "\n")
    sys.stderr.flush()
    os._exit(code)  # as the plan tool does: the mock runtime's teardown only prints noise


if __name__ == "__main__":
    measure()
