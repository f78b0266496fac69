"""Offline plan of a stack: `python -m tools.plan STACK [--out DIR] [--stack-file FILE]`.

Runs the real program under the offline engine, with no cloud and no credentials, and writes
what `pulumi up` would register: `resources.json`, one manifest per Kubernetes object we author,
one file per Helm chart with its values, and the stack outputs (`outputs.json`, values the fake
cloud invented wrapped as `{"offlineFake": ...}`). The output directory carries a marker file
(`.service-mesh-plan`) listing what the tool wrote: only such a directory (or an empty one) is
ever replaced, and only as a whole once the new plan is complete. Exit 2 with a message for bad
configuration or a bad `--out`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from tools import json_text
from tools.cost import plan_lines
from tools.engine import ROOT, Resource, Run, StackFileError, collector_tuned, run_stack
from tools.review_diff import digests_text

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
_NOT_MANIFESTS = ("kubernetes:helm.sh/", "kubernetes:yaml/")

MARKER = ".service-mesh-plan"
WRITTEN_BY = "python -m tools.plan"
FAKE = "offlineFake"
FAKE_MARK = "[offline fake]"
OFFLINE_NOTE = (
    'offline plan (tools/engine.py): each value wrapped as {"offlineFake": ...} was invented by '
    "the mock engine (documentation IPs, hash ids, fake endpoints and versions); `pulumi up` "
    "reports the real ones. Do not copy them."
)
# Directories every plan has, even when empty (a stack without Helm releases).
_PLAN_DIRS = ("manifests", "charts")
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class OutputError(Exception):
    """`--out` names something the plan must not replace; the message says why and what to do."""


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


def outputs_document(run: Run) -> dict[str, Any]:
    """The stack outputs for `outputs.json`: a note first, then each output by name, a value the
    fake cloud invented wrapped as `{"offlineFake": value}` so that it cannot pass for real."""
    doc: dict[str, Any] = {"_offline": OFFLINE_NOTE}
    for key, value in sorted(run.outputs.items()):
        doc[key] = {FAKE: value} if key in run.fake_outputs else value
    return doc


# libyaml's emitter, when PyYAML was built with it, is ~6x faster than the pure-Python one and,
# sharing its representer and resolver, writes the same text but for one thing: it folds a long
# double-quoted scalar only at spaces where the pure-Python emitter also breaks inside words.
# Only strings outside printable ASCII (multi-line PromQL and dashboards, control or non-ASCII
# characters) are written quoted that way, so those are masked for libyaml by a placeholder and
# written by the pure-Python emitter itself, at the column and indentation the placeholder got.
# tests/test_plan_speed.py proves the texts identical; without libyaml, the pure emitter.
_C_DUMPER = getattr(yaml, "CSafeDumper", None) if yaml.__with_libyaml__ else None
_LEAVES = (int, float, bool, type(None))


class _Unmaskable(Exception):
    """A document the fast path does not handle (a key that is not a short printable-ASCII
    string, a leaf that is not JSON-like, a placeholder already in the text): it is written by
    the pure emitter."""


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _plain_data(value: Any) -> bool:
    """Whether `value` holds only printable-ASCII strings, numbers, booleans and nulls."""
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, dict):
        return all(_printable_key(k) and _plain_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_data(v) for v in value)
    return isinstance(value, _LEAVES)


def _printable_key(key: Any) -> bool:
    """A key both emitters write as the same simple key: the pure one refuses an empty key or
    one of 128 characters or more as a simple key, libyaml only from 129."""
    return isinstance(key, str) and 0 < len(key) < 128 and _printable(key)


def _mask(value: Any, masked: list[str], token: str) -> Any:
    """`value` with every string outside printable ASCII replaced by `token` + its index."""
    if isinstance(value, str):
        if _printable(value):
            return value
        masked.append(value)
        return f"{token}{len(masked) - 1}"
    if isinstance(value, dict):
        if not all(_printable_key(k) for k in value):
            raise _Unmaskable
        return {k: _mask(v, masked, token) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, masked, token) for v in value]
    if not isinstance(value, _LEAVES):
        raise _Unmaskable
    return value


def _pure_scalar(text: str, column: int, indent: int) -> str:
    """`text` as the pure-Python emitter writes a block mapping value or sequence item whose
    indicator (`:` or `-`) ends at `column`, inside indentation `indent`: its own style choice,
    escapes and folding, leading space included."""
    stream = io.StringIO()
    emitter = yaml.SafeDumper(stream)
    tag = "tag:yaml.org,2002:str"
    implicit = (
        emitter.resolve(yaml.ScalarNode, text, (True, False)) == tag,
        emitter.resolve(yaml.ScalarNode, text, (False, True)) == tag,
    )
    emitter.event = yaml.ScalarEvent(None, tag, implicit, text)
    emitter.flow_level, emitter.simple_key_context = 0, False
    emitter.column, emitter.indent = column, indent
    emitter.whitespace = emitter.indention = False
    emitter.analysis, emitter.style = None, None
    emitter.process_tag()
    emitter.process_scalar()
    return stream.getvalue()


def _unmask(text: str, masked: list[str], token: str) -> str:
    out, done = [], 0
    for i, value in enumerate(masked):
        found = f" {token}{i}\n"
        at = text.find(found, done)
        if at < 0 or text.find(found, at + 1) >= 0:
            raise _Unmaskable
        line = text.rfind("\n", 0, at) + 1
        head = text[line:at]
        if head.endswith(":"):  # a mapping value: indented one step past its key
            key = len(head) - len(head.lstrip(" "))
            while head.startswith("- ", key):  # the items this mapping opens ("- - key:")
                key += 2
            indent = key + 2
        elif head.endswith("-"):  # a sequence item: indented past its dash
            indent = at + 1 - line
        else:
            raise _Unmaskable
        out += [text[done:at], _pure_scalar(value, at - line, indent)]
        done = at + len(found) - 1
    out.append(text[done:])
    return "".join(out)


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_FLOATS = yaml.SafeDumper(io.StringIO())  # only its float representer is used


def _node(value: Any, masked: list[str], token: str, seen: set[int]) -> yaml.Node:
    """The node PyYAML's SafeRepresenter (`sort_keys=False`, block style) makes of `value`,
    built in one pass with the checks and the masking of `_mask`. A dict or list met twice
    (the representer would write an anchor and an alias) is `_Unmaskable`."""
    kind = type(value)
    if kind is str:
        if value.isascii() and value.isprintable():
            return yaml.ScalarNode(_STR, value)
        masked.append(value)
        return yaml.ScalarNode(_STR, f"{token}{len(masked) - 1}")
    if kind is dict or kind is list:
        if id(value) in seen:
            raise _Unmaskable
        seen.add(id(value))
        if kind is list:
            items = [_node(v, masked, token, seen) for v in value]
            return yaml.SequenceNode(_SEQ, items, flow_style=False)
        pairs = []
        for key, item in value.items():
            if not _printable_key(key):
                raise _Unmaskable
            pairs.append((yaml.ScalarNode(_STR, key), _node(item, masked, token, seen)))
        return yaml.MappingNode(_MAP, pairs, flow_style=False)
    if value is None:
        return yaml.ScalarNode("tag:yaml.org,2002:null", "null")
    if kind is bool:
        return yaml.ScalarNode("tag:yaml.org,2002:bool", "true" if value else "false")
    if kind is int:
        return yaml.ScalarNode("tag:yaml.org,2002:int", str(value))
    if kind is float:
        return _FLOATS.represent_float(value)
    raise _Unmaskable


class _CachedResolver:
    """libyaml's serializer asks the Python resolver about every scalar twice (would it read
    back as a string, plain or quoted?); a large plan asks about the same few thousand values
    hundreds of thousands of times. Without path resolvers (SafeDumper has none) the answer
    depends only on the question, so it is remembered (and forgotten past `_LIMIT`)."""

    _answers: dict[tuple[Any, ...], Any] = {}
    _LIMIT = 200_000

    def resolve(self, kind, value, implicit):
        if kind is not yaml.ScalarNode:  # a collection's value is its (unhashable) items
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        answers = _CachedResolver._answers
        found = answers.get(key)
        if found is None:
            if len(answers) > self._LIMIT:
                answers.clear()
            found = answers[key] = super().resolve(kind, value, implicit)
        return found


_FAST_DUMPER = (
    type("_FastDumper", (_CachedResolver, _C_DUMPER), {}) if _C_DUMPER is not None else None
)
if _FAST_DUMPER is not None and _FAST_DUMPER.yaml_path_resolvers:  # pragma: no cover
    raise RuntimeError("path resolvers make a resolver's answer depend on the path")


def dump_yaml(obj: Any) -> str:
    """`yaml.safe_dump(obj, sort_keys=False)`, byte for byte, mostly written by libyaml (see
    `_C_DUMPER`): the nodes are built directly (`_node`), serialized by libyaml, and masked
    strings written by the pure emitter (`_unmask`)."""
    if _FAST_DUMPER is None:
        return yaml.safe_dump(obj, sort_keys=False)
    masked: list[str] = []
    token = f"zmask{uuid.uuid4().hex}n"
    try:
        node = _node(obj, masked, token, set())
        text = yaml.serialize(
            node, Dumper=_FAST_DUMPER, allow_unicode=False, width=None, line_break=None
        )
        return _unmask(text, masked, token) if masked else text
    except _Unmaskable:
        return yaml.safe_dump(obj, sort_keys=False)


def render(run: Run) -> dict[str, str]:
    """Every file of the plan, relative path -> text, built in memory before anything is
    written (so a conflict fails before the output directory is touched)."""
    files: dict[str, str] = {
        # Sorted by URN: registration order depends on when outputs resolve, and a plan must
        # be byte-identical between runs to be diffed in review.
        "resources.json": json_text.dumps(
            [r.to_json() for r in sorted(run.resources, key=lambda r: r.urn)]
        )
        + "\n",
        "outputs.json": json_text.dumps(outputs_document(run)) + "\n",
        # Lets tools.review say that a [secret] changed without showing it.
        "digests.json": digests_text(run.resources),
    }
    for r in run.resources:
        if is_manifest(r):
            obj = manifest(r)
            name = f"manifests/{manifest_filename(obj)}"
            if name in files:
                raise RuntimeError(f"two objects would be written to {name}")
            files[name] = dump_yaml(obj)
        elif r.type in HELM_TYPES:
            spec = chart(r)
            files[f"charts/{_slug(spec['namespace'], spec['name'])}.yaml"] = dump_yaml(spec)
    return files


def _marker_text(run: Run, files: list[str]) -> str:
    header = {
        "writtenBy": WRITTEN_BY,
        "stack": run.stack,
        "note": "this directory is replaced as a whole by the next plan; keep no files here",
        "files": sorted(files),
    }
    return json.dumps(header, indent=2) + "\n"


def _written_files(directory: Path) -> set[str] | None:
    """The files a previous plan wrote into `directory`, from its marker; None if it has none."""
    try:
        header = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    files = header.get("files") if isinstance(header, dict) else None
    if header.get("writtenBy") != WRITTEN_BY or not isinstance(files, list):
        return None
    return {f for f in files if isinstance(f, str)}


def _foreign(directory: Path, written: set[str]) -> list[str]:
    """What is in `directory` that the plan did not write (files, links, other entries)."""
    own = written | {MARKER}
    own_dirs = set(_PLAN_DIRS) | {str(Path(w).parent.as_posix()) for w in written}
    found = []
    for parent, dirs, names in os.walk(directory):
        base = Path(parent).relative_to(directory)
        for name in sorted(dirs):
            rel = (base / name).as_posix()
            if rel not in own_dirs or (Path(parent) / name).is_symlink():
                found.append(rel + "/")
                dirs.remove(name)  # what is inside is not ours either; do not list it
        for name in sorted(names):
            rel = (base / name).as_posix()
            path = Path(parent) / name
            if rel not in own or path.is_symlink() or not path.is_file():
                found.append(rel)
    return sorted(found)


def check_out(out: Path) -> None:
    """Refuse an `--out` the plan would have to delete something it did not write to replace:
    a file, a link, the current directory or one above it, or a non-empty directory that is
    not a previous plan output."""
    absolute = Path(os.path.abspath(out))
    if out.is_symlink():
        raise OutputError(f"--out {out} is a symbolic link; pass the directory it points to")
    if absolute == absolute.parent or Path.cwd().is_relative_to(absolute):
        raise OutputError(
            f"--out {out} is the current directory or one above it; pass a directory of its own, "
            "such as build/STACK"
        )
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(
            f"--out {out} is a file, not a directory; pass a new or empty directory, "
            "or a previous plan output"
        )
    if not any(out.iterdir()):
        return
    written = _written_files(out)
    if written is None:
        raise OutputError(
            f"--out {out} is not empty and is not a previous plan output (no {MARKER} marker); "
            "refusing to replace it. Pass a new or empty directory (a plan written before plans "
            "were marked: delete it yourself once)"
        )
    foreign = _foreign(out, written)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise OutputError(
            f"--out {out} is a previous plan output but holds files the plan did not write: "
            f"{shown}; move them away first"
        )


def _remove_plan(directory: Path) -> None:
    """Delete a directory only if it is a plan output holding nothing else (or empty)."""
    if not any(directory.iterdir()):
        directory.rmdir()
        return
    written = _written_files(directory)
    if written is None or _foreign(directory, written):
        raise OutputError(f"{directory} is not a plan output; left in place")
    shutil.rmtree(directory)


def _put(path: Path, text: str, made: set[Path]) -> None:
    """Write one file of a fresh staging directory; `made`: the directories already there
    (5,000 manifests share two)."""
    if path.parent not in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        made.add(path.parent)
    with open(path, "wb") as file:
        file.write(text.encode("utf-8"))


def write(run: Run, out: Path) -> None:
    """Write the plan of `run` to `out` atomically: it is built in a sibling temporary
    directory and swapped in only once complete, so a failure leaves the previous plan as it
    was; only an empty directory or a previous plan output (see `check_out`) is replaced."""
    check_out(out)
    with collector_tuned():  # the run's whole heap is live: full collections would walk it
        files = render(run)
    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        # The marker first: the staging directory is then a plan output the cleanup may remove.
        (staging / MARKER).write_text(_marker_text(run, list(files)))
        made = {staging}
        for name in _PLAN_DIRS:
            (staging / name).mkdir()
            made.add(staging / name)
        for rel, text in files.items():
            _put(staging / rel, text, made)
        _swap(staging, out)
    except BaseException:
        if staging.exists():
            with contextlib.suppress(OSError, OutputError):
                _remove_plan(staging)
        raise


def _swap(staging: Path, out: Path) -> None:
    check_out(out)  # again: the directory may have changed while the program ran
    if not out.exists():
        os.rename(staging, out)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    previous = trash / "plan"
    os.rename(out, previous)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(previous, out)
        trash.rmdir()
        raise
    _remove_plan(previous)
    trash.rmdir()


def summary(run: Run) -> str:
    """Resources per component and per type, then the stack outputs, all in a stable order
    (sorted) so that two runs print the same text; invented outputs are labelled."""
    by_urn = {r.urn: r for r in run.resources}
    components = sorted(
        (r for r in run.resources if not r.custom and r.type.startswith("service-mesh:")),
        key=lambda r: (r.type, r.name),
    )
    lines = [f"stack {run.stack}: {len(run.resources)} resources"]
    lines.append("per component:")
    for comp in components:
        count = sum(1 for r in run.resources if _owner(r, by_urn) is comp)
        lines.append(f"  {comp.type} {comp.name}: {count}")
    lines.append("per type:")
    for type_, count in sorted(Counter(r.type for r in run.resources).items()):
        lines.append(f"  {count:4d}  {type_}")
    lines.append(f"stack outputs ({FAKE_MARK}: invented by tools/engine.py, not real values):")
    for key, value in sorted(run.outputs.items()):
        mark = f"  {FAKE_MARK}" if key in run.fake_outputs else ""
        lines.append(f"  {key}: {value}{mark}")
    return "\n".join(lines)


def _owner(r: Resource, by_urn: dict[str, Resource]) -> Resource | None:
    """The nearest ancestor that is one of our components."""
    parent = by_urn.get(r.parent or "")
    while parent is not None:
        if parent.type.startswith("service-mesh:"):
            return parent
        parent = by_urn.get(parent.parent or "")
    return None


def stacks() -> list[str]:
    """The stacks that have a stack file in the project (`Pulumi.<stack>.yaml`)."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


def _stack_file_problem(stack: str, given: Path | None) -> str | None:
    """Why the stack file cannot be read, in words that say what to pass instead."""
    if not _STACK_NAME.match(stack):
        return (
            f"error: stack name {stack!r} is not valid: letters, digits, '-', '_' and '.', "
            "starting with a letter or digit"
        )
    if given is not None:
        if given.is_dir():
            return f"error: --stack-file {given} is a directory, not a stack file"
        if not given.exists():
            return f"error: --stack-file {given}: no such file"
        if not given.is_file():
            return f"error: --stack-file {given} is not a regular file"
        return None
    path = ROOT / f"Pulumi.{stack}.yaml"
    if path.is_dir():
        return f"error: {path} is a directory, not a stack file"
    if not path.is_file():
        known = ", ".join(stacks()) or "none"
        return (
            f"error: no stack file for stack {stack!r} ({path.name} in {ROOT}); "
            f"stacks with a file: {known}; or pass --stack-file FILE"
        )
    return None


def check_export_path(path: Path) -> None:
    """`--export` never overwrites a file this tool did not write (an earlier offline export)."""
    from tools.export import OFFLINE_NOTE

    if path.is_dir() or path.is_symlink():
        raise OutputError(f"--export {path}: is a directory or a link; pass a file name")
    if path.exists():
        try:
            note = json.loads(path.read_text())["deployment"]["manifest"].get("note")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            note = None
        if note != OFFLINE_NOTE:
            raise OutputError(
                f"--export {path}: exists and is not an offline export written by this tool; "
                "refusing to overwrite it"
            )


def write_export(run: Run, path: Path) -> None:
    """The export, written whole or not at all (a temporary file renamed into place)."""
    from tools.export import export_document

    check_export_path(path)
    text = json_text.dumps(export_document(run)) + "\n"
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "stack", help="stack name: dev, staging, production (reads Pulumi.STACK.yaml)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output directory (default build/STACK); must be new, empty or a previous plan",
    )
    parser.add_argument(
        "--stack-file", type=Path, help="stack file to use instead of Pulumi.STACK.yaml"
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="also write the plan as a `pulumi stack export` (v3, --show-secrets shape) to FILE",
    )
    args = parser.parse_args(argv)

    from components.base.model import ConfigError

    problem = _stack_file_problem(args.stack, args.stack_file)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    out = args.out or ROOT / "build" / args.stack
    try:
        check_out(out)  # before the program runs: a bad --out fails fast
        if args.export is not None:
            check_export_path(args.export)
        run = run_stack(args.stack, stack_file)
        write(run, out)
        if args.export is not None:
            write_export(run, args.export)
    except (ConfigError, StackFileError) as error:
        print(str(error), file=sys.stderr)
        return 2
    except OutputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(run))
    # Monthly cost and capacity (tools/cost.py); a platform that does not fit its minimum
    # node pools is refused.
    lines, fits = plan_lines(r.to_json() for r in run.resources)
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0 if fits else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The mock runtime leaves an event loop whose teardown at interpreter exit prints noise.
    os._exit(code)
