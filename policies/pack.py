"""The policy pack's declaration: every rule of `rules/` as a `pulumi_policy` policy, and the
arguments `__main__.py` gives `PolicyPack`. Importing this module starts nothing, so the
offline runner (`tools/policy.py`) and the tests build the analyzer from the same list.

Every policy defaults to advisory; the per-stack config files (`config/<stack>.json`, passed
with `--policy-pack-config`) make them mandatory for production and disable the production-only
ones elsewhere.

A stack policy gets each resource's outputs. Where the Kubernetes provider's configuration is
unknown at preview (a new or replaced cluster), the engine hands back an empty map for every
object it would create or update, so no stack policy can judge the stack: each reports "can't
run" (advisory) instead of a violation of objects it cannot see, or a pass it did not earn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UnknownValueError

from policies.rules import (
    authorization,
    availability,
    cluster,
    egress,
    isolation,
    load_balancers,
    mtls,
    protection,
    revisions,
    secrets,
    supply_chain,
    traffic,
)
from policies.rules.base import RESOURCE, Rule
from policies.rules.helm import KUBERNETES_COMPONENTS

PACK_NAME = "service-mesh"
DEFAULT_LEVEL = EnforcementLevel.ADVISORY
DESCRIPTION = (
    "Production guardrails of the service-mesh platform: mTLS, authorization, isolation, "
    "availability, cluster settings, protection, supply chain, egress, traffic, Istio "
    "revisions, load balancers and secrets."
)

RULES: list[Rule] = [
    *mtls.RULES,
    *authorization.RULES,
    *isolation.RULES,
    *availability.RULES,
    *cluster.RULES,
    *protection.RULES,
    *supply_chain.RULES,
    *egress.RULES,
    *traffic.RULES,
    *revisions.RULES,
    *load_balancers.RULES,
    *secrets.RULES,
]


def _resource_validate(rule: Rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for text in rule.check(args, args.get_config()):
            report_violation(text, None)

    return validate


class PropertiesUnknown(UnknownValueError):
    """Kubernetes objects whose outputs are not known at preview: the analyzer reports the
    policy as "can't run" (advisory), as for any value unknown at preview."""

    def __init__(self, first: Any, count: int) -> None:
        super().__init__(UNKNOWN_OBJECT_VALUE, [])
        others = f" and {count - 1} other Kubernetes object(s)" if count > 1 else ""
        self.message = (
            f"the properties of {first.resource_type} {first.name}{others} can't be known "
            "during preview (their Kubernetes provider's configuration is unknown, as for a new "
            "or replaced cluster: the engine sends them empty)"
        )


def unknown_kubernetes_objects(resources: Sequence[Any]) -> list[Any]:
    """Kubernetes custom resources (objects and `helm.v3.Release`s) with no properties at
    all: a preview's Create or Update on a provider whose config is unknown returns an empty
    map. Components (`helm.v4.Chart`, ...) have no outputs of their own and are not counted."""
    return [
        r
        for r in resources
        if r.resource_type.startswith("kubernetes:")
        and r.resource_type not in KUBERNETES_COMPONENTS
        and len(r.props) == 0
    ]


def _stack_validate(rule: Rule):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        unknown = unknown_kubernetes_objects(args.resources)
        if unknown:
            raise PropertiesUnknown(unknown[0], len(unknown))
        for urn, text in rule.check(args.resources, args.get_config()):
            report_violation(text, urn)

    return validate


def policy(rule: Rule) -> Policy:
    """One rule as the analyzer's policy: its description heads every violation message."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "config_schema": PolicyConfigSchema(rule.config) if rule.config else None,
        "severity": Severity(rule.severity),
        "remediation_steps": rule.remediation,
    }
    if rule.kind == RESOURCE:
        return ResourceValidationPolicy(validate=_resource_validate(rule), **common)
    return StackValidationPolicy(validate=_stack_validate(rule), **common)


def policies() -> list[Policy]:
    return [policy(rule) for rule in RULES]


def pack_arguments() -> dict[str, Any]:
    """What `__main__.py` passes to `PolicyPack(...)` (and the offline runner to the same
    analyzer servicer `PolicyPack` builds)."""
    return {
        "name": PACK_NAME,
        "policies": policies(),
        "enforcement_level": DEFAULT_LEVEL,
        "description": DESCRIPTION,
    }
