"""Disaster recovery from stack exports, checked against the program (docs/recovery.md).

    python -m tools.recover check EXPORT --stack STACK [--config CONFIG_JSON] [--root-cert PEM]
                                         [--stack-file F]
    python -m tools.recover plan EXPORT --lost cluster|region [--region R] [--stack STACK]

`check` says whether an export (`pulumi stack export --show-secrets`, or `tools.plan --export`)
can rebuild the stack. It **refuses** it (exit 1) only for what makes it unfit: a format other
than version 3, a URN of another stack, a null secret, no readable `istio-system/cacerts` root,
a root other than the stack's (by fingerprint), or a config backup (`pulumi config
--show-secrets --json`) with a value missing. What differs from the current program (resources
only in the export or only in the program, protect flags) and pending operations are
**warnings** (exit 0): routine pending changes never cost a day's backup. Exit 2 on bad input,
and for a stack whose root comes from config when no `--root-cert` (or `--config`) says which
root that is. Provider resources and the objects a `helm.sh/v4` Chart renders are state
bookkeeping the offline program does not register: neither is compared.

`plan` prints the runbook for a lost cluster or a lost region: the exact commands in order,
which resources are retained (same URN and identity), recreated (and in what dependency order),
updated in place, or only in state; and an estimated recovery time from the graph depth.
Nothing here runs Pulumi, touches the cloud, or writes a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tools.recovery.check import check
from tools.recovery.plan import recovery_plan
from tools.recovery.root_ca import read_root_cert
from tools.recovery.runbook import render_plan
from tools.recovery.state import RecoverInputError, load_config_backup, load_export, urn_stack

# --- command line ---------------------------------------------------------------------------


def _program(stack: str, stack_file: Path | None):
    from components.base.model import ConfigError
    from tools.engine import run_stack

    try:
        return run_stack(stack, stack_file)
    except ConfigError as error:
        raise RecoverInputError(str(error)) from None
    except (OSError, ValueError) as error:
        raise RecoverInputError(f"stack {stack}: {error}") from None


def _stack_of(doc: dict[str, Any]) -> str:
    for r in doc["deployment"]["resources"]:
        if r.get("type") == "pulumi:pulumi:Stack":
            found = urn_stack(r["urn"])
            if found:
                return found
    raise RecoverInputError("the export has no stack resource; pass --stack")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.recover", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="say whether an export can rebuild the stack")
    c.add_argument("export", type=Path)
    c.add_argument("--stack", required=True)
    c.add_argument("--stack-file", type=Path, help="instead of Pulumi.STACK.yaml")
    c.add_argument(
        "--root-cert", type=Path, help="the stack's mesh root CA (PEM): the escrowed root-cert.pem"
    )
    c.add_argument(
        "--config", type=Path, help="the config backup (`pulumi config --show-secrets --json`)"
    )
    p = sub.add_parser("plan", help="print the runbook for a lost cluster or region")
    p.add_argument("export", type=Path)
    p.add_argument("--lost", choices=("cluster", "region"), required=True)
    p.add_argument("--region", help="with --lost region: the region to rebuild in")
    p.add_argument("--stack", help="default: the export's stack")
    p.add_argument("--stack-file", type=Path)
    args = parser.parse_args(argv)
    try:
        doc = load_export(args.export)
        if args.command == "check":
            root = read_root_cert(args.root_cert) if args.root_cert else None
            config = load_config_backup(args.config) if args.config else None
            report = check(doc, args.stack, _program(args.stack, args.stack_file), root, config)
            for line in report.refusals:
                print(line)
            for line in report.warnings:
                print(f"warning: {line}")
            if report.refusals:
                # The bare count is what state-backup.yml filters out of its annotations.
                print(f"{len(report.refusals)} finding(s)")
                return 1
            drift = f" ({len(report.warnings)} warning(s))" if report.warnings else ""
            print(f"export OK for stack {args.stack}{drift}")
            return 0
        stack = args.stack or _stack_of(doc)
        if args.lost == "region" and not args.region:
            raise RecoverInputError("--lost region needs --region (the region to rebuild in)")
        plan = recovery_plan(doc, stack, _program(stack, args.stack_file), args.lost, args.region)
        print(render_plan(plan))
        return 0
    except RecoverInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    import os

    os._exit(code)
