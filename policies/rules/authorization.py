"""Authorization policies that grant no more than they say: every ALLOW rule names its source,
a source is never split from its operation and condition across rules, and no ALLOW rule
matches principals or namespaces by a wildcard that spans namespaces.

Istio ORs the items of `rules` and ANDs `from`, `to` and `when` inside one item. So an ALLOW
rule without `from` admits any caller, and `[{from: A}, {to: X}]` means "A may do anything, and
anyone may do X": the common mistake of writing one intended rule as two.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.base import (
    RESOURCE,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    is_kind,
    is_mapping,
    items,
    message,
    namespace,
    obj_name,
    where,
)

GROUP, KIND = "security.istio.io", "AuthorizationPolicy"


def _allow_rules(resource: Any, config: Mapping[str, Any]) -> list[tuple[int, Any]] | None:
    """(1-based index, rule) of an ALLOW policy without a granted exception; None otherwise."""
    if not is_kind(resource, GROUP, KIND):
        return None
    if str(dig(resource.props, "spec", "action", default="ALLOW")) != "ALLOW":
        return None
    if excepted(config, f"{namespace(resource)}/{obj_name(resource)}"):
        return None
    return list(enumerate(items(dig(resource.props, "spec", "rules")), start=1))


def _sources(rule: Any) -> list[Any]:
    return [s for f in items(dig(rule, "from")) if is_mapping(s := dig(f, "source")) and s]


def _has(rule: Any, part: str) -> bool:
    return any(is_mapping(x) and x for x in items(dig(rule, part)))


def check_source(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    for index, rule in _allow_rules(resource, config) or []:
        if not _sources(rule):
            yield message(
                f"{where(resource)} ALLOW rule {index} has no source (`from`)",
                "an ALLOW rule without a source admits every caller, including workloads "
                "without an identity, for whatever its `to`/`when` match.",
                "add `from: [{source: {principals: [cluster.local/ns/<ns>/sa/<caller>]}}]` "
                "to the same rule item (declare the caller in `services[].callers`)",
            )


def check_split(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    rules = _allow_rules(resource, config) or []
    source_only = [i for i, r in rules if _sources(r) and not (_has(r, "to") or _has(r, "when"))]
    without_source = [i for i, r in rules if not _sources(r) and (_has(r, "to") or _has(r, "when"))]
    if source_only and without_source:
        yield message(
            f"{where(resource)} splits one grant across rules: rule(s) "
            f"{', '.join(map(str, source_only))} hold only a source and rule(s) "
            f"{', '.join(map(str, without_source))} only operations or conditions",
            "Istio ORs rules, so the source may call anything and anyone may call the "
            "operations: the opposite of the source AND operation AND condition intended.",
            "put `from`, `to` and `when` of one grant in the same rule item",
        )


# A principal may end in a wildcard only after a complete `<trust domain>/ns/<ns>/sa/` prefix.
_NAMESPACED_PRINCIPAL = re.compile(r"^[^*/]+/ns/[^*/]+/sa/[^*/]*\*?$")
_CONDITION_KEYS = {"source.principal": "principal", "source.namespace": "namespace"}


def _wildcards(rule: Any) -> Iterator[str]:
    for source in _sources(rule):
        for value in items(dig(source, "principals")):
            if "*" in str(value) and not _NAMESPACED_PRINCIPAL.match(str(value)):
                yield f"principal pattern {value!s}"
        for value in items(dig(source, "namespaces")):
            if "*" in str(value):
                yield f"namespace pattern {value!s}"
    for condition in items(dig(rule, "when")):
        kind = _CONDITION_KEYS.get(str(dig(condition, "key", default="")))
        for value in items(dig(condition, "values")) if kind else []:
            bad = "*" in str(value) and (
                kind == "namespace" or not _NAMESPACED_PRINCIPAL.match(str(value))
            )
            if bad:
                yield f"`when` {kind} pattern {value!s}"


def check_wildcards(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    for index, rule in _allow_rules(resource, config) or []:
        for found in _wildcards(rule):
            yield message(
                f"{where(resource)} ALLOW rule {index} matches the {found}, which spans namespaces",
                "a wildcard across namespaces admits workloads nobody declared, including any "
                "namespace created later.",
                "name each caller (cluster.local/ns/<ns>/sa/<sa>); a wildcard may only end a "
                "service-account name inside one namespace",
            )


_EXCEPTION = "namespace/AuthorizationPolicy name"
RULES = [
    Rule(
        name="authz-allow-needs-source",
        description="Every ALLOW AuthorizationPolicy rule names its source (`from`).",
        kind=RESOURCE,
        check=check_source,
        remediation="Add the caller's principal to the rule's `from`.",
        config={"exceptions": exceptions_schema(_EXCEPTION)},
        severity="critical",
        exception_key=_EXCEPTION,
    ),
    Rule(
        name="authz-no-split-rules",
        description=(
            "An ALLOW AuthorizationPolicy keeps source, operation and condition of a grant in "
            "one rule (rules are ORed)."
        ),
        kind=RESOURCE,
        check=check_split,
        remediation="Merge the split items into one rule with `from`, `to` and `when`.",
        config={"exceptions": exceptions_schema(_EXCEPTION)},
        severity="critical",
        exception_key=_EXCEPTION,
    ),
    Rule(
        name="authz-no-wildcard-principals",
        description="No ALLOW AuthorizationPolicy matches principals or namespaces by a "
        "wildcard across namespaces.",
        kind=RESOURCE,
        check=check_wildcards,
        remediation="List the callers' principals; wildcard only a service-account suffix.",
        config={"exceptions": exceptions_schema(_EXCEPTION)},
        severity="high",
        exception_key=_EXCEPTION,
    ),
]
