"""Offline plan of a stack: `python -m tools.plan STACK [--out DIR] [--stack-file FILE]`.

Runs the real program under the offline engine, with no cloud and no credentials, and writes
what `pulumi up` would register: `resources.json`, one manifest per Kubernetes object we author,
one file per Helm chart with its values, and the stack outputs (`outputs.json`). Exit 2 with
the message for bad configuration.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tools.engine import ROOT, Resource, Run, run_stack

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
_NOT_MANIFESTS = ("kubernetes:helm.sh/", "kubernetes:yaml/")


def is_manifest(resource: Resource) -> bool:
    """A Kubernetes object the program authors itself (typed resource or CustomResource)."""
    return resource.type.startswith("kubernetes:") and not resource.type.startswith(_NOT_MANIFESTS)


def manifest(resource: Resource) -> dict[str, Any]:
    """The object as the API server would receive it: apiVersion and kind first."""
    body = dict(resource.inputs)
    head = {"apiVersion": body.pop("apiVersion", None), "kind": body.pop("kind", None)}
    return {**head, **body}


def chart(resource: Resource) -> dict[str, Any]:
    inputs = resource.inputs
    return {
        "name": inputs.get("name", resource.name),
        "chart": inputs.get("chart"),
        "version": inputs.get("version"),
        "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
        "namespace": inputs.get("namespace"),
        "type": resource.type,
        "values": inputs.get("values") or {},
    }


def _slug(*parts: str | None) -> str:
    text = "-".join(p for p in parts if p)
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def manifest_filename(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return _slug(obj.get("kind"), meta.get("namespace") or "cluster", meta.get("name")) + ".yaml"


def write(run: Run, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    (out / "charts").mkdir()
    (out / "resources.json").write_text(
        # Sorted by URN: registration order depends on when outputs resolve, and a plan must
        # be byte-identical between runs to be diffed in review.
        json.dumps([r.to_json() for r in sorted(run.resources, key=lambda r: r.urn)], indent=2)
        + "\n"
    )
    (out / "outputs.json").write_text(json.dumps(run.outputs, indent=2, sort_keys=True) + "\n")
    for r in run.resources:
        if is_manifest(r):
            obj = manifest(r)
            path = out / "manifests" / manifest_filename(obj)
            if path.exists():
                raise RuntimeError(f"two objects would be written to {path.name}")
            path.write_text(yaml.safe_dump(obj, sort_keys=False))
        elif r.type in HELM_TYPES:
            spec = chart(r)
            name = _slug(spec["namespace"], spec["name"]) + ".yaml"
            (out / "charts" / name).write_text(yaml.safe_dump(spec, sort_keys=False))


def summary(run: Run) -> str:
    by_urn = {r.urn: r for r in run.resources}
    components = [r for r in run.resources if not r.custom and r.type.startswith("service-mesh:")]
    lines = [f"stack {run.stack}: {len(run.resources)} resources"]
    lines.append("per component:")
    for comp in components:
        count = sum(1 for r in run.resources if _owner(r, by_urn) is comp)
        lines.append(f"  {comp.type} {comp.name}: {count}")
    lines.append("per type:")
    for type_, count in sorted(Counter(r.type for r in run.resources).items()):
        lines.append(f"  {count:4d}  {type_}")
    lines.append("stack outputs:")
    for key, value in sorted(run.outputs.items()):
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _owner(r: Resource, by_urn: dict[str, Resource]) -> Resource | None:
    """The nearest ancestor that is one of our components."""
    parent = by_urn.get(r.parent or "")
    while parent is not None:
        if parent.type.startswith("service-mesh:"):
            return parent
        parent = by_urn.get(parent.parent or "")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "stack", help="stack name: dev, staging, production (reads Pulumi.STACK.yaml)"
    )
    parser.add_argument("--out", type=Path, help="output directory (default build/STACK)")
    parser.add_argument(
        "--stack-file", type=Path, help="stack file to use instead of Pulumi.STACK.yaml"
    )
    args = parser.parse_args(argv)

    from components.base.model import ConfigError

    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    if not stack_file.is_file():
        print(f"error: no stack file {stack_file}", file=sys.stderr)
        return 2
    try:
        run = run_stack(args.stack, stack_file)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return 2
    out = args.out or ROOT / "build" / args.stack
    write(run, out)
    print(summary(run))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The mock runtime leaves an event loop whose teardown at interpreter exit prints noise.
    import os

    os._exit(code)
