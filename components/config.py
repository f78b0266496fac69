"""Typed stack configuration: every `service-mesh:*` key parsed once into frozen models.

`service-mesh:environment` names an environment (`components/base/profiles.py`), which picks
the tier of every section's profile (like Istio's install profiles); the stack file states only
what differs. Each concern declares its section in `components/<concern>/config.py` with its
`PROFILES` and its checks; they are composed and checked together here. Any bad value raises
`ConfigError` before a resource is registered: pydantic's errors in the stack file's words
(`components/base/messages.py`), and what only the project's stack files together show (a
mistyped namespace, two stacks with one `name`: `components/base/stacks.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, get_args

import pulumi
from pydantic import SecretStr, ValidationError, field_validator, model_validator

from components.base import messages, stacks
from components.base.model import (
    MISSING,
    NAMESPACE,
    ConfigError,
    ConfigModel,
    Problem,
    deep_merge,
    dns_label,
)
from components.base.profiles import ENVIRONMENTS, tier_of
from components.cluster.checks import cluster_problems
from components.cluster.config import ClusterConfig
from components.edge.config import IngressConfig, ingress_problems
from components.graph import checks as graph_checks
from components.graph.checks import ServiceGraph, graph_problems
from components.graph.model import MeshNamespace, MeshService
from components.istio.config import IstioConfig, istio_problems
from components.istio.revisions import namespace_revision_problems
from components.observability.config import ObservabilityConfig, observability_problems
from components.security.config import SecurityConfig, security_problems
from components.slo.config import SloConfig, slo_problems
from components.traffic.config import TrafficConfig, traffic_problems

__all__ = ["ENVIRONMENTS", "ConfigError", "PlatformConfig", "StackConfigError", "load", "parse"]

# Where `Pulumi.yaml` and the stack files live: the project root, beside `components/`.
PROJECT_DIR = Path(__file__).resolve().parent.parent

R = TypeVar("R")


class StackConfigError(ConfigError, pulumi.RunError):
    """`ConfigError` as `pulumi up` reports it: a `RunError` prints its message, no traceback."""


# Sections: top-level key -> model. Each concern adds its own section here.
SECTIONS: dict[str, type[ConfigModel]] = {
    "cluster": ClusterConfig,
    "istio": IstioConfig,
    "ingress": IngressConfig,
    "observability": ObservabilityConfig,
    "security": SecurityConfig,
    "slos": SloConfig,
    "traffic": TrafficConfig,
}


class PlatformConfig(ConfigModel):
    """Everything one stack needs, validated together so cross-section rules can be checked."""

    environment: str
    name: str
    cluster: ClusterConfig
    # Application namespaces in the mesh (components/graph/model.py).
    mesh_namespaces: tuple[MeshNamespace, ...] = ()
    observability: ObservabilityConfig
    # Alertmanager receivers (webhook URLs with their keys): secrets, flat top-level keys.
    alert_pager_url: SecretStr | None = None
    alert_ticket_url: SecretStr | None = None
    # The declared service graph (components/graph/model.py): who may call whom.
    services: tuple[MeshService, ...] = ()
    security: SecurityConfig
    # Mesh root CA (PEM), set with `python -m tools.mesh_ca`; required in production.
    mesh_ca_root_cert: SecretStr | None = None
    mesh_ca_root_key: SecretStr | None = None
    istio: IstioConfig
    ingress: IngressConfig
    # DigitalOcean API token (DNS write) cert-manager solves DNS-01 with; secret, flat key.
    dns_api_token: SecretStr | None = None
    slos: SloConfig
    traffic: TrafficConfig

    @field_validator("environment")
    @classmethod
    def _environment(cls, v: str) -> str:
        if v not in ENVIRONMENTS:
            raise ValueError(f"must be one of: {', '.join(ENVIRONMENTS)}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return dns_label(v)

    @cached_property
    def graph(self) -> ServiceGraph:
        """The declared service graph, indexed once for every layer that reads it."""
        return ServiceGraph(self.mesh_namespaces, self.services, self.security.external_hosts)

    def rules(self, section: Any) -> Any:
        """The rules this stack's tier sets for `section` (a section model, or a module with
        `PROFILES` such as `components.graph.checks`)."""
        return section.PROFILES[tier_of(self.environment)].rules

    @model_validator(mode="after")
    def _environment_rules(self) -> PlatformConfig:
        env = self.environment
        problems = cluster_problems(self.cluster, self.rules(ClusterConfig), env)
        problems += observability_problems(
            self.observability,
            self.rules(ObservabilityConfig),
            env,
            self.alert_pager_url is not None,
            self.alert_ticket_url is not None,
            self.cluster.region,
        )
        problems += graph_problems(self.graph, self.rules(graph_checks), env)
        problems += security_problems(self.security, self.rules(SecurityConfig), env)
        problems += self._mesh_ca_root_problems()
        problems += istio_problems(self.istio, self.rules(IstioConfig), env)
        problems += namespace_revision_problems(self.istio, list(self.graph.namespace_names))
        problems += ingress_problems(
            self.ingress, self.rules(IngressConfig), env, self.dns_api_token
        )
        problems += slo_problems(
            self.slos,
            self.rules(SloConfig),
            env,
            self.graph,
            self.observability.prometheus.retention,
        )
        problems += traffic_problems(
            self.traffic,
            self.rules(TrafficConfig),
            env,
            self.graph,
            self.ingress.hosts,
            self.slos.objectives,
        )
        if problems:
            raise ConfigError(problems)
        return self

    def _mesh_ca_root_problems(self) -> list[Problem]:
        """The root's certificate and key come as a pair (and are required where the tier says
        so); each one missing is reported under its own key."""
        pair = {"meshCaRootCert": self.mesh_ca_root_cert, "meshCaRootKey": self.mesh_ca_root_key}
        missing = [key for key, value in pair.items() if value is None]
        required = self.rules(SecurityConfig).configured_root
        if not missing or (len(missing) == 2 and not required):
            return []
        fix = (
            f"set both {NAMESPACE}:meshCaRootCert and {NAMESPACE}:meshCaRootKey with "
            "`python -m tools.mesh_ca`"
        )
        if required:
            why = f"is required in {self.environment}"
        else:
            (present,) = set(pair) - set(missing)
            why = (
                f"is required because {present} is set (the root's certificate and key go together)"
            )
        return [Problem(key, MISSING, f"{why}: {fix}") for key in missing]


SECRET_FIELDS: tuple[str, ...] = tuple(
    name
    for name, field in PlatformConfig.model_fields.items()
    if SecretStr in (field.annotation, *get_args(field.annotation))
)


def secret_requirement(field: str, environment: str) -> str:
    """When the stack must set the secret `field` (a PlatformConfig field name), read off the
    rules the environment's tier sets: what README's config table says for each secret."""
    tier = tier_of(environment)
    if field in ("mesh_ca_root_cert", "mesh_ca_root_key"):
        if SecurityConfig.PROFILES[tier].rules.configured_root:
            return "required"
        return "optional (else a root is kept in state)"
    if field in ("alert_pager_url", "alert_ticket_url"):
        if ObservabilityConfig.PROFILES[tier].rules.receivers_required:
            return "required"
        return "optional (alerts are not delivered without it)"
    if field == "dns_api_token":
        return "required when `ingress.hosts` is set"
    raise KeyError(f"no requirement stated for secret field {field!r}")


def profile(environment: str) -> dict[str, Any]:
    """The defaults an environment starts from, keyed as in stack files: its tier's section
    profiles, then the values the environment itself states."""
    base: dict[str, Any] = {"name": f"mesh-{environment}"}
    tier = tier_of(environment)
    for key, section in SECTIONS.items():
        base[key] = copy.deepcopy(dict(section.PROFILES[tier].defaults))  # type: ignore[attr-defined]
    return deep_merge(base, dict(ENVIRONMENTS[environment].overrides))


def default_names() -> dict[str, str]:
    """Environment -> the `name` its stacks get unless they set one (`mesh-<environment>`)."""
    return {env: str(profile(env)["name"]) for env in ENVIRONMENTS}


def parse(
    raw: dict[str, Any],
    secret_keys: frozenset[str] = frozenset(),
    other_stacks: Mapping[str, str] | None = None,
) -> PlatformConfig:
    """Validate raw `service-mesh:*` config (keys without the namespace) into a PlatformConfig.
    `other_stacks` (stack -> name, e.g. from `stacks.sibling_names`) refuses a `name` another
    stack of the project already uses.

    Pure: no Pulumi runtime needed, so tests and tools call it directly."""
    data = {k: stacks.decode(v) for k, v in raw.items()}
    environment = data.get("environment")
    if environment is None:
        raise ConfigError.one(
            "environment",
            MISSING,
            f"required key is missing; set one of: {', '.join(ENVIRONMENTS)}",
        )
    if not isinstance(environment, str) or environment not in ENVIRONMENTS:
        raise ConfigError.one(
            "environment", environment, f"must be one of: {', '.join(ENVIRONMENTS)}"
        )
    for key in SECRET_FIELDS:
        alias = PlatformConfig.model_fields[key].alias or key
        if alias in data and alias not in secret_keys:
            raise ConfigError.one(
                alias,
                "[not shown]",
                f"must be stored encrypted: pulumi config set --secret {NAMESPACE}:{alias} ...",
            )
    merged = deep_merge(profile(environment), data)
    name = merged.get("name")
    shared = sorted(s for s, n in (other_stacks or {}).items() if n == name)
    problems = [stacks.name_problem(str(name), shared, this_stack=True)] if shared else []
    try:
        cfg = PlatformConfig.model_validate(merged)
    except ValidationError as error:
        problems = messages.problems(PlatformConfig, error) + problems
    except ConfigError as error:
        problems = error.problems + problems
    if problems:
        raise ConfigError(problems)
    return cfg


def load() -> PlatformConfig:
    """Read this stack's `service-mesh:*` keys from the Pulumi runtime and validate them; a key
    under a mistyped namespace, or a `name` another stack file of the project uses, is refused
    with them."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secret = frozenset(k for k in values if runtime_config.is_config_secret(k) or k in env_secrets)
    problems = stacks.namespace_problems(values, secret)
    prefix = f"{NAMESPACE}:"
    raw = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
    try:
        cfg = parse(
            raw,
            frozenset(k[len(prefix) :] for k in secret if k.startswith(prefix)),
            stacks.sibling_names(pulumi.get_stack(), PROJECT_DIR, default_names()),
        )
    except ConfigError as error:
        problems += error.problems
    if problems:
        raise StackConfigError(problems) from None
    return cfg
