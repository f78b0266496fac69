"""The policy pack's declaration: every rule of `rules/` as a `pulumi_policy` policy, and the
arguments `__main__.py` gives `PolicyPack`. Importing this module starts nothing, so the
offline runner (`tools/policy.py`) and the tests build the analyzer from the same list.

Every policy defaults to advisory; the per-stack config files (`config/<stack>.json`, passed
with `--policy-pack-config`) make them mandatory for production and disable the production-only
ones elsewhere.
"""

from __future__ import annotations

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


def _stack_validate(rule: Rule):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
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
