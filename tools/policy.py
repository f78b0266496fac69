"""Run the policy pack offline on a stack's plan, through pulumi_policy's own analyzer.

`python -m tools.policy STACK [--plan DIR] [--config FILE] [--mode MODE]` runs every policy of
`policies/` against the offline plan of STACK (the committed `Pulumi.STACK.yaml` run by
`tools/engine.py`) or against `DIR/resources.json` written earlier by `tools.plan`, with the
stack's policy config (`policies/config/STACK.json` unless `--config`). It prints one line per
violation, `[mandatory|advisory] <policy> <urn>: <message>`, then a summary, and exits 1 when a
mandatory violation exists, 0 otherwise, 2 on bad input (no traceback).

The path is the CLI's minus gRPC: the servicer `PolicyPack` would serve
(`pulumi_policy.policy._PolicyAnalyzerServicer`, private, pinned at 1.21.0; a smoke test fails
if it moves) gets `Configure`, `ConfigureStack`, one `Analyze` per resource and one
`AnalyzeStack`, with properties as protobuf Structs (numbers become floats, proxies on the
policy side), secrets wrapped as secrets and `[unknown]` as the preview's unknown sentinel. So
levels, the "can't run policy" downgrade and messages are the analyzer's own. What the CLI does
before it calls the analyzer is done here: policy config defaults from each schema, `all`, the
per-policy overrides, and schema validation (jsonschema); a config entry naming no policy is
refused (the CLI would ignore a typo'd exception silently), and so is a property no policy
schema declares (the CLI's schema is `{type, properties, required}`, without
`additionalProperties: false`, so it accepts a misspelt setting, which no rule then reads).

`--mode` says what the engine would send (`MODES`): `plan` the program's inputs everywhere
(most checking: the inputs of `helm.v4.Chart`s too); `preview` what a real preview sends,
`helm.v4.Chart` and the other remote components with no properties; `new-cluster` also every
Kubernetes object's outputs empty in `AnalyzeStack`, as when the provider's config is unknown.
A plan record may carry `outputs` beside `inputs`: `AnalyzeStack` gets those, as in the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools import plan_folder

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "policies" / "config"
SECRET_MASK = "[secret]"  # tools/engine.py masks every secret so
UNKNOWN_MASK = "[unknown]"  # ... and every value unknown at preview so
LEVELS = ("advisory", "mandatory", "remediate", "disabled")  # apitype.EnforcementLevel
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# What the engine sends (see the module docstring).
PLAN, PREVIEW, NEW_CLUSTER = "plan", "preview", "new-cluster"
MODES = (PLAN, PREVIEW, NEW_CLUSTER)
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class PolicyInputError(Exception):
    """Bad input to the runner: printed as `error: ...`, exit code 2."""


@dataclass(frozen=True)
class Finding:
    """One diagnostic of the analyzer."""

    level: str  # mandatory | advisory
    policy: str
    urn: str
    message: str

    def line(self) -> str:
        text = " — ".join(part.strip() for part in self.message.splitlines() if part.strip())
        return f"[{self.level}] {self.policy} {self.urn}: {text}"


@dataclass(frozen=True)
class Report:
    stack: str
    resources: int
    policies: int
    findings: list[Finding]

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "mandatory"]

    @property
    def advisory(self) -> list[Finding]:
        return [f for f in self.findings if f.level != "mandatory"]

    def summary(self) -> str:
        cannot_run = sorted({f.policy for f in self.findings if "can't run policy" in f.message})
        lines = [
            f"policy pack on stack {self.stack}: {self.policies} policies, {self.resources} "
            f"resources: {len(self.mandatory)} mandatory, {len(self.advisory)} advisory "
            "violation(s)"
        ]
        if cannot_run:
            lines.append(
                f"not run on unknown values (advisory, as in a preview): {', '.join(cannot_run)}"
            )
        lines.append("FAILED: mandatory violations" if self.mandatory else "passed")
        return "\n".join(lines)


# --- the analyzer, as PolicyPack builds it ---------------------------------------------------


def servicer():
    """The analyzer servicer `PolicyPack(**pack_arguments())` would serve, built with the same
    arguments (and the version "0.0.1" PolicyPack gives it; the CLI reads the pack's version
    from PulumiPolicy.yaml)."""
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    from policies.pack import pack_arguments

    args = pack_arguments()
    return _PolicyAnalyzerServicer(
        args["name"],
        "0.0.1",
        args["policies"],
        args["enforcement_level"],
        args.get("initial_config"),
        args.get("description"),
    )


def _level_name(value: int) -> str:
    from pulumi.runtime import proto

    return proto.EnforcementLevel.Name(value).lower()


def _level_value(name: str) -> int:
    from pulumi.runtime import proto

    return proto.EnforcementLevel.Value(name.upper())


# --- policy config, as the CLI reconciles it -------------------------------------------------


def parse_config(text: str, where: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """A policy config file -> {policy or 'all': (level or None, properties)}, as the CLI's
    parsePolicyPackConfig reads it (an empty file is no config)."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyInputError(
            f"{where}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}"
        ) from None
    if not isinstance(raw, dict):
        raise PolicyInputError(
            f'{where}: a policy config is a JSON object such as {{"all": "mandatory"}}'
        )
    out: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            level, props = value, {}
        elif isinstance(value, dict):
            props = dict(value)
            level = props.pop("enforcementLevel", None)
            if level is not None and not isinstance(level, str):
                raise PolicyInputError(f"{where}: {key}.enforcementLevel must be a string")
        else:
            raise PolicyInputError(
                f"{where}: {key}: must be an enforcement level or an object, got "
                f"{type(value).__name__}"
            )
        if level is not None and level not in LEVELS:
            raise PolicyInputError(
                f"{where}: {key}: {level!r} is not an enforcement level; allowed: "
                f"{', '.join(LEVELS)}"
            )
        if level is None and not props:
            continue
        out[key] = (level, props)
    return out


def reconcile(
    infos: Sequence[Any], given: Mapping[str, tuple[str | None, dict[str, Any]]], where: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each policy's (level, properties): its own level and schema defaults, then `all`, then
    the per-policy entries (ReconcilePolicyPackConfig), validated against each schema."""
    import jsonschema
    from google.protobuf import json_format

    schemas: dict[str, dict[str, Any]] = {}
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    for info in infos:
        properties = json_format.MessageToDict(info.configSchema.properties)
        # The CLI's schema (pkg/resource/analyzer/config.go), refusing an undeclared key.
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False}
        if properties:
            schema["properties"] = properties
        if info.configSchema.required:
            schema["required"] = list(info.configSchema.required)
        schemas[info.name] = schema
        defaults = {k: v["default"] for k, v in properties.items() if "default" in v}
        result[info.name] = (_level_name(info.enforcementLevel), defaults)
    unknown = sorted(set(given) - set(result) - {"all"})
    if unknown:
        raise PolicyInputError(
            f"{where}: no policy named {', '.join(unknown)} in the pack; policies: "
            f"{', '.join(sorted(result))}"
        )
    all_level = given.get("all", (None, {}))[0]
    if all_level:
        result = {name: (all_level, props) for name, (_, props) in result.items()}
    for name, (level, props) in given.items():
        if name == "all":
            continue
        old_level, old_props = result[name]
        result[name] = (level or old_level, {**old_props, **props})
    problems = []
    for name, (_, props) in result.items():
        validator = jsonschema.Draft7Validator(schemas[name])
        for error in sorted(validator.iter_errors(props), key=lambda e: list(e.path)):
            at = ".".join(str(p) for p in error.path)
            message = error.message
            if error.validator == "additionalProperties":
                declared = sorted(schemas[name].get("properties") or {})
                message += f"; allowed: {', '.join(declared) or 'no properties'}"
            problems.append(f"{name}{'.' + at if at else ''}: {message}")
    if problems:
        raise PolicyInputError(f"{where}: invalid policy config: " + "; ".join(problems))
    return result


def load_config(path: Path | None, infos: Sequence[Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    if path is None:
        return reconcile(infos, {}, "pack defaults")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise PolicyInputError(f"policy config {path}: {reason}") from None
    return reconcile(infos, parse_config(text, str(path)), str(path))


# --- resources -> analyzer requests ----------------------------------------------------------


def wire(value: Any) -> Any:
    """A plan value as the engine sends it to the analyzer: secrets wrapped (the analyzer
    unwraps them to plaintext), `[unknown]` as the preview's unknown sentinel."""
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    if value == SECRET_MASK:
        return {_SIG_KEY: _SECRET_SIG, "value": SECRET_MASK}
    if value == UNKNOWN_MASK:
        return UNKNOWN_STRING_VALUE
    return value


def engine_properties(r: Mapping[str, Any], mode: str) -> tuple[dict, dict]:
    """A plan record's properties as the engine sends them in `mode`: (to `Analyze`, to
    `AnalyzeStack`). The engine's `Analyze` gets inputs and `AnalyzeStack` outputs (a record's
    `outputs`, else its inputs); a remote component (`helm.v4.Chart`) is registered with no
    properties; with the Kubernetes provider's config unknown, a preview's Create or Update of
    a Kubernetes object returns an empty map."""
    from policies.rules.helm import KUBERNETES_COMPONENTS, REMOTE_COMPONENTS

    inputs = dict(r.get("inputs") or {})
    outputs = dict(r["outputs"]) if isinstance(r.get("outputs"), dict) else inputs
    if mode == PLAN:
        return inputs, outputs
    if r["type"] in REMOTE_COMPONENTS:
        return {}, {}
    if mode == NEW_CLUSTER and r["type"].startswith("kubernetes:"):
        if r["type"] not in KUBERNETES_COMPONENTS:
            return inputs, {}
    return inputs, outputs


def _struct(value: Mapping[str, Any]):
    from google.protobuf import struct_pb2

    out = struct_pb2.Struct()
    out.update(wire(dict(value)))
    return out


def _options(r: Mapping[str, Any]):
    from pulumi.runtime import proto

    return proto.AnalyzerResourceOptions(
        protect=bool(r.get("protect")),
        parent=r.get("parent") or "",
        ignoreChanges=list(r.get("ignoreChanges") or []),
    )


def _provider(r: Mapping[str, Any], by_urn: Mapping[str, Mapping[str, Any]]):
    from pulumi.runtime import proto

    ref = r.get("provider") or ""
    found = by_urn.get(ref.rsplit("::", 1)[0]) if "::" in ref else None
    if found is None:
        return None
    return proto.AnalyzerProviderResource(
        type=found["type"],
        properties=_struct(found["inputs"]),
        urn=found["urn"],
        name=found["name"],
    )


def _stack_urn(stack: str, resources: Sequence[Mapping[str, Any]]) -> str:
    project = resources[0]["urn"].split("::")[1] if resources else "service-mesh"
    return f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"


class _MemoizedJsonFormat:
    """`google.protobuf.json_format` as the servicer sees it during a cached `analyze`: a message
    converted before (same type, same deterministic bytes) is answered from `memo`. In `Analyze`
    and `AnalyzeStack` the servicer hands each converted dict straight to
    `deserialize_properties`, which builds a new tree of its own (only the scalars are shared),
    so a policy never holds an object another call saw. The stack policies otherwise convert
    every resource again, one policy after the other."""

    def __init__(self, real: Any, memo: dict[tuple[str, bytes], Any]) -> None:
        self._real = real
        self._memo = memo

    def MessageToDict(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return self._real.MessageToDict(message, *args, **kwargs)
        key = (message.DESCRIPTOR.full_name, message.SerializeToString(deterministic=True))
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self._real.MessageToDict(message)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_CONVERSIONS = b"\0conversions"  # the key of the conversion memo in an `analyze` cache


@contextlib.contextmanager
def _conversions_memoized(cache: dict[bytes, Any] | None):
    """While analysing with a cache, the servicer's Struct-to-dict conversions are memoized in
    it (`_MemoizedJsonFormat`); `Configure`, whose converted config reaches the policies as is,
    runs outside."""
    if cache is None:
        yield
        return
    from pulumi_policy import policy as sdk

    real = sdk.json_format
    sdk.json_format = _MemoizedJsonFormat(real, cache.setdefault(_CONVERSIONS, {}))
    try:
        yield
    finally:
        sdk.json_format = real


def analyze(
    resources: Sequence[Mapping[str, Any]],
    stack: str,
    config: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
    svc: Any = None,
    cache: dict[bytes, Any] | None = None,
    mode: str = PLAN,
) -> list[Finding]:
    """Every policy on `resources` (plan records: urn, type, name, parent, provider,
    dependencies, protect, inputs, optionally outputs) through the analyzer servicer, as the
    CLI drives it, with properties as the engine sends them in `mode` (`engine_properties`).

    `cache` (for callers analysing many variants of one plan) keeps each `Analyze` response
    by request and config: a resource policy sees only its resource, so an unchanged resource
    under unchanged config gets the same answer; the servicer's conversions of the request
    Structs are memoized in it too (`_MemoizedJsonFormat`)."""
    from pulumi.runtime import proto

    if mode not in MODES:
        raise PolicyInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    svc = svc or servicer()
    if config is None:
        config = reconcile(svc.GetAnalyzerInfo(None, None).policies, {}, "pack defaults")
    policy_config = {}
    for name, (level, props) in config.items():
        settings = proto.PolicyConfig(enforcementLevel=_level_value(level))
        settings.properties.update(json.loads(json.dumps(props)))
        policy_config[name] = settings
    svc.Configure(proto.ConfigureAnalyzerRequest(policyConfig=policy_config), None)
    project = resources[0]["urn"].split("::")[1] if resources else "service-mesh"
    svc.ConfigureStack(
        proto.AnalyzerStackConfigureRequest(stack=stack, project=project, dry_run=True), None
    )
    by_urn = {r["urn"]: r for r in resources}
    fingerprint = json.dumps(config, sort_keys=True).encode() + stack.encode() + b"\0"
    findings: list[Finding] = []

    def collect(response: Any, default_urn: str) -> None:
        for d in response.diagnostics:
            level = _level_name(d.enforcementLevel)
            findings.append(Finding(level, d.policyName, d.urn or default_urn, d.message))

    # Each resource's properties, options and provider, built once for both calls (the
    # messages are copied into each request).
    providers: dict[str, Any] = {}
    parts = []
    for r in resources:
        ref = r.get("provider") or ""
        if ref not in providers:
            providers[ref] = _provider(r, by_urn)
        to_analyze, to_stack = engine_properties(r, mode)
        analyzed = _struct(to_analyze)
        stacked = analyzed if to_stack == to_analyze else _struct(to_stack)
        parts.append((analyzed, stacked, _options(r), providers[ref]))
    for r, (properties, _, options, provider) in zip(resources, parts, strict=True):
        request = proto.AnalyzeRequest(
            type=r["type"], properties=properties, urn=r["urn"], name=r["name"], options=options
        )
        if provider is not None:
            request.provider.CopyFrom(provider)
        if cache is None:
            collect(svc.Analyze(request, None), r["urn"])
            continue
        key = fingerprint + request.SerializeToString(deterministic=True)
        if key not in cache:
            with _conversions_memoized(cache):
                cache[key] = svc.Analyze(request, None)
        collect(cache[key], r["urn"])
    stack_resources = []
    for r, (_, properties, options, provider) in zip(resources, parts, strict=True):
        item = proto.AnalyzerResource(
            type=r["type"],
            properties=properties,
            urn=r["urn"],
            name=r["name"],
            options=options,
            parent=r.get("parent") or "",
            dependencies=list(r.get("dependencies") or []),
        )
        if provider is not None:
            item.provider.CopyFrom(provider)
        stack_resources.append(item)
    with _conversions_memoized(cache):
        response = svc.AnalyzeStack(proto.AnalyzeStackRequest(resources=stack_resources), None)
    collect(response, _stack_urn(stack, resources))
    order = {"mandatory": 0, "remediate": 0, "advisory": 1}
    return sorted(findings, key=lambda f: (order.get(f.level, 2), f.policy, f.urn, f.message))


# --- inputs ----------------------------------------------------------------------------------


def read_plan(directory: Path, stack: str) -> list[dict[str, Any]]:
    """The resources of a plan folder written by `tools.plan`, checked for shape and stack."""
    try:
        data = plan_folder.read_resources(directory, stack)
    except plan_folder.PlanFolderError as error:
        raise PolicyInputError(f"--plan {error}") from None
    path = directory / plan_folder.RESOURCES
    stacks = sorted({plan_folder.stack_of(r["urn"]) for r in data})
    if stacks and stacks != [stack]:
        raise PolicyInputError(
            f"{path}: the plan is of stack {', '.join(stacks)}, not {stack}; pass that stack "
            "(its policy config differs)"
        )
    return data


def plan_resources(run: Any) -> list[dict[str, Any]]:
    """A `tools.engine.Run`'s resources as plan records (what resources.json holds)."""
    return [r.to_json() for r in sorted(run.resources, key=lambda r: r.urn)]


def run(stack: str, plan: Path | None, config_path: Path | None, mode: str = PLAN) -> Report:
    if not _STACK_NAME.match(stack):
        raise PolicyInputError(
            f"stack name {stack!r} is not valid: letters, digits, '-', '_' and '.'"
        )
    config_path = config_path or CONFIG_DIR / f"{stack}.json"
    if not config_path.is_file():
        known = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json"))) or "none"
        raise PolicyInputError(
            f"no policy config {config_path} (stacks with one: {known}); create "
            f"policies/config/{stack}.json or pass --config FILE"
        )
    svc = servicer()
    config = load_config(config_path, svc.GetAnalyzerInfo(None, None).policies)
    if plan is not None:
        resources = read_plan(plan, stack)
    else:
        resources = plan_resources(_run_program(stack))
    findings = analyze(resources, stack, config, svc, mode=mode)
    return Report(stack, len(resources), len(config), findings)


def _run_program(stack: str) -> Any:
    from components.base.model import ConfigError
    from tools.engine import StackFileError, run_stack, stack_file

    path = stack_file(stack)
    if not path.is_file():
        raise PolicyInputError(
            f"no stack file {path.name} for stack {stack!r}; pass --plan DIR for a plan "
            "written by tools.plan"
        )
    try:
        return run_stack(stack)
    except (ConfigError, StackFileError) as error:
        raise PolicyInputError(str(error)) from None


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.policy", description=__doc__.split("\n")[0]
    )
    parser.add_argument("stack", help="stack name: dev, staging, production")
    parser.add_argument(
        "--plan", type=Path, help="a plan folder written by tools.plan (its resources.json)"
    )
    parser.add_argument(
        "--config", type=Path, help="policy config (default policies/config/STACK.json)"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=PLAN,
        help="what the engine sends: plan (the program's inputs, default), preview (helm.v4 "
        "Charts without properties, as a real preview), new-cluster (also Kubernetes objects "
        "without outputs, as when the provider's config is unknown)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        report = run(args.stack, args.plan, args.config, args.mode)
    except PolicyInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for finding in report.findings:
        print(finding.line())
    print(report.summary())
    return 1 if report.mandatory else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The mock runtime leaves an event loop whose teardown at interpreter exit prints noise.
    os._exit(code)
