"""The `security` config section: egress control (outbound policy, external hosts), the ingress
rate limit and the mesh CA, with per-tier profiles and the checks the tier demands. The service
graph it protects is in `components/graph/`. Pure: no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import field_validator

from components.base.model import ConfigModel, Problem, between
from components.base.profiles import Profile
from components.edge.config import RateLimit
from components.graph.model import ExternalHost


@dataclass(frozen=True)
class SecurityRules:
    """What a tier demands of the security section."""

    allow_any_outbound: bool  # ALLOW_ANY may be chosen (dev only: it disables egress control)
    protect_ca: bool  # the intermediate CA Secret must be protected
    configured_root: bool  # the mesh root CA must come from stack config, not from state


class MeshCaConfig(ConfigModel):
    """The per-cluster intermediate CA istiod signs workload certificates with."""

    intermediate_validity_hours: int
    early_renewal_hours: int
    protect: bool
    # Extra roots appended to root-cert.pem while rotating the root (docs/security.md).
    additional_trusted_roots: tuple[str, ...] = ()

    @field_validator("additional_trusted_roots")
    @classmethod
    def _pem(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for cert in v:
            if not cert.strip().startswith("-----BEGIN CERTIFICATE-----"):
                raise ValueError("each entry must be a PEM certificate ('-----BEGIN CERTIFICATE')")
        return tuple(c.strip() + "\n" for c in v)

    _validity = field_validator("intermediate_validity_hours")(
        between(720, 87600, " hours (30 days to 10 years)")
    )


_CA = {"intermediateValidityHours": 8760, "earlyRenewalHours": 720}


_CA = {"intermediateValidityHours": 8760, "earlyRenewalHours": 720}


def _defaults(requests_per_second: int, protect: bool) -> dict:
    return {
        "outboundTrafficPolicy": "REGISTRY_ONLY",
        "externalHosts": [],
        "ingressRateLimit": {
            "enabled": True,
            "requestsPerInterval": requests_per_second,
            "intervalSeconds": 1,
        },
        "meshCa": {**_CA, "protect": protect},
    }


class SecurityConfig(ConfigModel):
    """Egress control, ingress protection and the mesh CA (`service-mesh:security`)."""

    outbound_traffic_policy: Literal["REGISTRY_ONLY", "ALLOW_ANY"]
    external_hosts: tuple[ExternalHost, ...]
    ingress_rate_limit: RateLimit
    mesh_ca: MeshCaConfig

    PROFILES: ClassVar[dict[str, Profile[SecurityRules]]] = {
        "dev": Profile(_defaults(50, protect=False), SecurityRules(True, False, False)),
        "staging": Profile(_defaults(200, protect=False), SecurityRules(False, False, False)),
        "production": Profile(_defaults(1000, protect=True), SecurityRules(False, True, True)),
    }


def security_problems(
    security: SecurityConfig, rules: SecurityRules, environment: str
) -> list[Problem]:
    """Checks spanning fields or set by the tier, each naming its key path."""
    problems: list[Problem] = []
    if security.outbound_traffic_policy == "ALLOW_ANY" and not rules.allow_any_outbound:
        problems.append(
            Problem(
                "security.outboundTrafficPolicy",
                "ALLOW_ANY",
                f"must be REGISTRY_ONLY in {environment}; ALLOW_ANY is dev-only",
            )
        )
    ca = security.mesh_ca
    if not 0 <= ca.early_renewal_hours < ca.intermediate_validity_hours:
        problems.append(
            Problem(
                "security.meshCa.earlyRenewalHours",
                ca.early_renewal_hours,
                "must be at least 0 and less than intermediateValidityHours "
                f"({ca.intermediate_validity_hours}), else every `pulumi up` "
                "re-issues the intermediate",
            )
        )
    if rules.protect_ca and not ca.protect:
        problems.append(
            Problem(
                "security.meshCa.protect",
                False,
                f"must be true in {environment} (the mesh CA is identity-bearing)",
            )
        )
    return problems
