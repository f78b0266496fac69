"""Typed stack configuration: every `service-mesh:*` key parsed once into frozen models.

`service-mesh:environment` names an environment (`components/base/profiles.py`), which picks
the tier of every section's profile (like Istio's install profiles); the stack file states only
what differs. Each concern declares its section in `components/<concern>/config.py` with its
`PROFILES` and its checks; they are composed and checked together here. Any bad value raises
`ConfigError` before a resource is registered.
"""

from __future__ import annotations

import copy
import json
from functools import cached_property
from typing import Any, TypeVar, get_args

import pulumi
from pydantic import SecretStr, ValidationError, field_validator, model_validator

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
from components.cluster.config import ClusterConfig, cluster_problems
from components.edge.config import IngressConfig, ingress_problems
from components.graph import checks as graph_checks
from components.graph.checks import ServiceGraph, graph_problems
from components.graph.model import MeshNamespace, MeshService
from components.istio.config import IstioConfig, istio_problems
from components.observability.config import ObservabilityConfig, observability_problems
from components.security.config import SecurityConfig, security_problems
from components.slo.config import SloConfig, slo_problems

__all__ = ["ENVIRONMENTS", "ConfigError", "PlatformConfig", "StackConfigError", "load", "parse"]

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
        if (self.mesh_ca_root_cert is None) != (self.mesh_ca_root_key is None) or (
            self.mesh_ca_root_cert is None and self.rules(SecurityConfig).configured_root
        ):
            problems.append(
                Problem(
                    "meshCaRootCert",
                    MISSING if self.mesh_ca_root_cert is None else "[secret]",
                    "meshCaRootCert and meshCaRootKey must both be set (required in production); "
                    "create them with `python -m tools.mesh_ca`",
                )
            )
        problems += istio_problems(self.istio, self.rules(IstioConfig), env)
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
        if problems:
            raise ConfigError(problems)
        return self


SECRET_FIELDS: tuple[str, ...] = tuple(
    name
    for name, field in PlatformConfig.model_fields.items()
    if SecretStr in (field.annotation, *get_args(field.annotation))
)


def profile(environment: str) -> dict[str, Any]:
    """The defaults an environment starts from, keyed as in stack files: its tier's section
    profiles, then the values the environment itself states."""
    base: dict[str, Any] = {"name": f"mesh-{environment}"}
    tier = tier_of(environment)
    for key, section in SECTIONS.items():
        base[key] = copy.deepcopy(dict(section.PROFILES[tier].defaults))  # type: ignore[attr-defined]
    return deep_merge(base, dict(ENVIRONMENTS[environment].overrides))


def _decode(raw: Any) -> Any:
    """Pulumi hands config values over as strings; objects and numbers arrive JSON-encoded."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a stack file may use at `loc`, to tell the user what is allowed."""
    model: Any = PlatformConfig
    for part in loc:
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return []
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, ConfigModel)):
            return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(str(p))
    return ".".join(parts)


def _problems(error: ValidationError, data: dict[str, Any]) -> list[Problem]:
    problems = []
    for e in error.errors():
        loc = tuple(e["loc"])
        kind = e["type"]
        msg = str(e["msg"]).removeprefix("Value error, ")
        value = e.get("input", MISSING)
        if kind == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1]))
            msg = f"unknown key; allowed keys here: {allowed}"
        elif kind == "missing":
            value, msg = MISSING, "required key is missing"
        elif kind == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        elif kind in ("tuple_type", "list_type"):
            msg = "must be a list"
        elif kind.endswith("_type") or kind.endswith("_parsing"):
            msg = msg.replace("Input should be", "must be")
        problems.append(Problem(_path(loc) or "(stack)", value, msg))
    return problems


def parse(raw: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> PlatformConfig:
    """Validate raw `service-mesh:*` config (keys without the namespace) into a PlatformConfig.

    Pure: no Pulumi runtime needed, so tests and tools call it directly."""
    data = {k: _decode(v) for k, v in raw.items()}
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
    try:
        return PlatformConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_problems(error, merged)) from None


def load() -> PlatformConfig:
    """Read this stack's `service-mesh:*` keys from the Pulumi runtime and validate them."""
    from pulumi.runtime import config as runtime_config

    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    prefix = f"{NAMESPACE}:"
    raw = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
    secrets = frozenset(
        k for k in raw if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secrets
    )
    try:
        return parse(raw, secrets)
    except ConfigError as error:
        raise StackConfigError(error.problems) from None
