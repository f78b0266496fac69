"""`python -m tools.X ...` for the command-line tests without paying, each time, for importing
Pulumi and its providers (0.6 s of a 1 s plan run; some forty commands a session).

`run_module(module, *args, ...)` returns what `subprocess.run([sys.executable, "-m", module,
*args], capture_output=True, text=True, ...)` returns. The command runs in a fork of one server
process that has imported third-party libraries only (`PRELOAD`: Pulumi, its providers and the
API groups a run loads, pydantic, yaml, jsonschema, pulumi_policy), nothing of this project, and
runs no other thread (both checked when it starts). The fork is a new process as `python -m`
would start it: the command's cwd, environment, `sys.argv` and `sys.path`; stdin, stdout and
stderr are files; the module runs through runpy's `_run_module_as_main` (what `-m` calls) in a
cleared `__main__`, and the interpreter exits as usual (atexit handlers, flushing, an uncaught
exception's traceback and exit code 1, a `SystemExit`'s code). The server's own objects stay
frozen in the fork (`gc.freeze`, as Python advises before forking): collections skip them, and
the command's objects are collected as usual.

What a library computed when it was imported is the server's: so a command is forked only when
its environment is the server's (`NOT_READ_ON_IMPORT` aside) and its cwd the checkout, as for
nearly every command the tests run; any other runs in a fresh interpreter. Tests that are about
a fresh interpreter itself keep one (each tool's `--help` in tests/test_tools.py, the layout
probes, the policy pack run as the CLI runs it, the benchmark)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from tools.engine import ROOT

PRELOAD = (
    "google.protobuf.json_format",
    "grpc",
    "jsonschema",
    "pydantic",
    "yaml",
    "pulumi",
    "pulumi.runtime",
    "pulumi.runtime.mocks",
    "pulumi.runtime.stack",
    "pulumi_digitalocean",
    "pulumi_kubernetes",
    "pulumi_kubernetes.admissionregistration.v1",
    "pulumi_kubernetes.apiextensions",
    "pulumi_kubernetes.apps.v1",
    "pulumi_kubernetes.core.v1",
    "pulumi_kubernetes.helm.v3",
    "pulumi_kubernetes.meta.v1",
    "pulumi_kubernetes.networking.v1",
    "pulumi_kubernetes.policy.v1",
    "pulumi_kubernetes.rbac.v1",
    "pulumi_kubernetes.yaml",
    "pulumi_policy",
    "pulumi_random",
    "pulumi_tls",
)
# Variables no preloaded library reads (checked with grep): they may differ from the server's.
# PYTHONPATH is applied to the fork's sys.path; pytest sets PYTEST_CURRENT_TEST for each test.
NOT_READ_ON_IMPORT = frozenset({"PYTHONPATH", "PYTEST_CURRENT_TEST"})
# The project's own packages: the server must not have imported any of them.
PROJECT = ("components", "tools", "policies", "tests")

_SERVER = r"""
import importlib, json, os, select, signal, sys
for name in sys.argv[1].split(","):
    importlib.import_module(name)
project = tuple(sys.argv[2].split(","))
mine = sorted(m for m in sys.modules if m.split(".")[0] in project)
threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
clean = {"project_modules": mine, "threads": threads}
import gc
gc.freeze()  # collections in a fork skip what the server loaded (its pages stay shared)
own_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
base_path = sys.path[1 + len(own_path):]
control = os.fdopen(int(sys.argv[3]), "r")
reply = os.fdopen(int(sys.argv[4]), "w")
reply.write(json.dumps(clean) + "\n")
reply.flush()


def finished(pid, timeout):  # whether the fork ends within `timeout` s (reaped afterwards)
    try:
        done = os.pidfd_open(pid)
    except OSError:  # a kernel without pidfds: poll
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(0.01)
        return False
    try:
        return bool(select.select([done], [], [], timeout)[0])
    finally:
        os.close(done)


def serve():
    for line in control:
        ask = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            return ask
        timed_out = not finished(pid, ask["timeout"])
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        answer = {"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out}
        reply.write(json.dumps(answer) + "\n")
        reply.flush()
    sys.exit(0)


def child(ask):
    control.close()
    reply.close()
    os.chdir(ask["cwd"])
    os.environ.clear()
    os.environ.update(ask["env"])
    for fd, path, flags in (
        (0, ask["stdin"], os.O_RDONLY),
        (1, ask["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, ask["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    extra = [p for p in ask["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *extra, *base_path]
    sys.argv[:] = ["-m", *ask["args"]]
    run = importlib.import_module("runpy")._run_module_as_main
    module = ask["module"]
    main = globals()
    for key in [k for k in main if not k.startswith("__")]:
        del main[key]  # the module runs in __main__'s namespace, as under `python -m`
    try:
        run(module)
    except Exception as error:  # reported as `python -m` reports it: from runpy's frame on
        error = error.with_traceback(error.__traceback__.tb_next)
        sys.excepthook(type(error), error, error.__traceback__)
        raise SystemExit(1) from None


child(serve())
"""


class Server:
    """The server process; `run` forks it for one command at a time."""

    def __init__(self) -> None:
        self.env = dict(os.environ)
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="forked-"))
        control_read, control_write = os.pipe()
        reply_read, reply_write = os.pipe()
        with (self._dir / "server.err").open("w") as errors:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _SERVER,
                    ",".join(PRELOAD),
                    ",".join(PROJECT),
                    str(control_read),
                    str(reply_write),
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                pass_fds=(control_read, reply_write),
            )
        os.close(control_read)
        os.close(reply_write)
        self._out = os.fdopen(control_write, "w")
        self._in = os.fdopen(reply_read, "r")
        hello = json.loads(self._in.readline() or "{}")
        if hello.get("project_modules") != [] or hello.get("threads") != 1:
            errors_text = (self._dir / "server.err").read_text()
            raise RuntimeError(f"the fork server did not start clean: {hello} {errors_text}")
        self._count = 0

    def accepts(self, cwd: Path | str, env: dict[str, str]) -> bool:
        """Whether a command with this cwd and environment may run in a fork."""

        def norm(e: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in e.items() if k not in NOT_READ_ON_IMPORT}

        return Path(cwd).resolve() == ROOT.resolve() and norm(env) == norm(self.env)

    def run(
        self,
        module: str,
        args: list[str],
        cwd: Path | str,
        env: dict[str, str],
        input: str | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", module, *args]
        with self._lock:
            self._count += 1
            base = self._dir / str(self._count)
            stdin = base.with_suffix(".in")
            stdin.write_text(input or "")
            ask = {
                "module": module,
                "args": args,
                "timeout": timeout,
                "cwd": str(cwd),
                "env": env,
                "stdin": str(stdin),
                "stdout": str(base.with_suffix(".out")),
                "stderr": str(base.with_suffix(".err")),
            }
            self._out.write(json.dumps(ask) + "\n")
            self._out.flush()
            line = self._in.readline()
            if not line:
                raise RuntimeError(f"the fork server died (exit {self._proc.poll()})")
            answer = json.loads(line)
            outputs = [Path(ask[k]).read_text() for k in ("stdout", "stderr")]
            for suffix in (".in", ".out", ".err"):
                base.with_suffix(suffix).unlink(missing_ok=True)
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired(command, timeout, *outputs)
        return subprocess.CompletedProcess(command, answer["returncode"], *outputs)

    def close(self) -> None:
        self._out.close()
        self._proc.wait(timeout=30)
        self._in.close()
        shutil.rmtree(self._dir, ignore_errors=True)


_SERVER_PROCESS: Server | None = None
COUNTS = {"forked": 0, "fresh": 0}  # commands run each way this session


def run_module(
    module: str,
    *args: Any,
    cwd: Path | str = ROOT,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, input=input,
    capture_output=True, text=True, timeout=timeout)`, in a fork of the server when the
    command's cwd and environment allow it (`Server.accepts`), else in a fresh interpreter."""
    global _SERVER_PROCESS
    wanted = dict(os.environ if env is None else env)
    argv = [str(a) for a in args]
    if hasattr(os, "fork") and hasattr(os, "waitid"):
        if _SERVER_PROCESS is None:
            _SERVER_PROCESS = Server()
        if _SERVER_PROCESS.accepts(cwd, wanted):
            COUNTS["forked"] += 1
            return _SERVER_PROCESS.run(module, argv, cwd, wanted, input, timeout)
    COUNTS["fresh"] += 1
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=cwd,
        env=wanted,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def close() -> None:
    """Stop the server (the session's end)."""
    global _SERVER_PROCESS
    if _SERVER_PROCESS is not None:
        _SERVER_PROCESS.close()
        _SERVER_PROCESS = None
