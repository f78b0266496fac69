"""Environments as data. A stack's `service-mesh:environment` names an entry of `ENVIRONMENTS`;
the entry says which *tier* of every section's profiles it starts from and which values it
states on top. Sections keep one `PROFILES` table keyed by tier (`Profile`: the stack-file
defaults and the typed rules the tier enforces), and builders read only resolved values, never
the environment's name: a new environment (an ephemeral `preview` stack derived from dev) is
one entry here, not edits across modules.

Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

TIERS: tuple[str, ...] = ("dev", "staging", "production")

R = TypeVar("R")


@dataclass(frozen=True)
class Environment:
    """One environment: the tier it takes defaults and rules from, and the stack-file-shaped
    values (`{"cluster": {"vpcCidr": ...}}`) it states over that tier's defaults."""

    tier: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


ENVIRONMENTS: dict[str, Environment] = {
    "dev": Environment("dev"),
    "staging": Environment("staging"),
    "production": Environment("production"),
}


@dataclass(frozen=True)
class Profile(Generic[R]):
    """A section's profile for one tier: `defaults` written as in stack files (camelCase), and
    `rules`, the typed demands the tier makes of the section (a replica floor, `protect`)."""

    defaults: Mapping[str, Any]
    rules: R


def tier_of(environment: str) -> str:
    """The tier an environment resolves to (`parse` has already refused unknown names)."""
    return ENVIRONMENTS[environment].tier
