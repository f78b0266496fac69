"""Typed stack configuration: every `service-mesh:*` key parsed once into frozen models.

`service-mesh:environment` picks a profile of defaults (like Istio's install profiles); the stack
file states only what differs. Each concern declares its section in
`components/<concern>_config.py` with its per-environment `DEFAULTS` and its cross-checks; they
are composed and checked together here. Any bad value raises `ConfigError` before a resource
is registered.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal, get_args

from pydantic import SecretStr, ValidationError, field_validator, model_validator

from components.cluster_config import ClusterConfig, cluster_problems
from components.ingress_config import IngressConfig, ingress_problems
from components.istio_config import IstioConfig, istio_problems
from components.model import (
    MISSING,
    NAMESPACE,
    ConfigError,
    ConfigModel,
    Problem,
    dns_label,
)
from components.observability_config import ObservabilityConfig, observability_problems
from components.security_config import (
    MeshService,
    SecurityConfig,
    graph_problems,
    unknown_service,
)
from components.slo_config import SloConfig

Environment = Literal["dev", "staging", "production"]
ENVIRONMENTS: tuple[str, ...] = ("dev", "staging", "production")


class MeshNamespace(ConfigModel):
    """An application namespace in the mesh: sidecars injected through the revision tag,
    seen by istiod's discoverySelectors, default-deny authorization and network policies."""

    name: str
    # Namespaces being migrated into the mesh may accept plaintext for a while.
    mtls: Literal["strict", "permissive"] = "strict"
    # Production only allows `permissive` with a stated reason, visible in the stack file.
    permissive_exception: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        dns_label(v)
        if v in RESERVED_NAMESPACES or v.startswith("kube-"):
            raise ValueError(
                f"is reserved for the platform; choose another name (reserved: "
                f"{', '.join(sorted(RESERVED_NAMESPACES))}, kube-*)"
            )
        return v


RESERVED_NAMESPACES = frozenset(
    {"default", "istio-system", "istio-ingress", "istio-egress", "monitoring", "cert-manager"}
)


# --- the whole stack --------------------------------------------------------------------------

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

    environment: Environment
    name: str
    cluster: ClusterConfig
    mesh_namespaces: tuple[MeshNamespace, ...] = ()
    observability: ObservabilityConfig
    # Alertmanager receivers (webhook URLs with their keys): secrets, flat top-level keys.
    alert_pager_url: SecretStr | None = None
    alert_ticket_url: SecretStr | None = None
    # The declared service graph (components/security_config.py): who may call whom.
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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return dns_label(v)

    @model_validator(mode="after")
    def _environment_rules(self) -> PlatformConfig:
        problems = cluster_problems(self.environment, self.cluster)
        seen: set[str] = set()
        for i, ns in enumerate(self.mesh_namespaces):
            key = f"meshNamespaces[{i}]"
            if ns.name in seen:
                problems.append(
                    Problem(f"{key}.name", ns.name, "is declared twice; names must be unique")
                )
            seen.add(ns.name)
            if (
                ns.mtls == "permissive"
                and self.environment == "production"
                and not ns.permissive_exception
            ):
                problems.append(
                    Problem(
                        f"{key}.mtls",
                        "permissive",
                        "is refused in production unless permissiveException states why "
                        "(a visible, reviewed exception); otherwise use 'strict'",
                    )
                )
        problems += observability_problems(
            self.environment,
            self.observability,
            self.alert_pager_url is not None,
            self.alert_ticket_url is not None,
        )
        problems += graph_problems(
            self.environment, [ns.name for ns in self.mesh_namespaces], self.services, self.security
        )
        if (self.mesh_ca_root_cert is None) != (self.mesh_ca_root_key is None) or (
            self.mesh_ca_root_cert is None and self.environment == "production"
        ):
            problems.append(
                Problem(
                    "meshCaRootCert",
                    MISSING if self.mesh_ca_root_cert is None else "[secret]",
                    "meshCaRootCert and meshCaRootKey must both be set (required in production); "
                    "create them with `python -m tools.mesh_ca`",
                )
            )
        problems += istio_problems(self.environment, self.istio)
        problems += ingress_problems(self.environment, self.ingress, self.dns_api_token)
        problems += slo_problems(
            self.environment, self.slos, self.services, self.observability.prometheus.retention
        )
        if problems:
            raise ConfigError(problems)
        return self


_DURATION_DAYS = {"h": 1 / 24, "d": 1, "w": 7}


def _days(duration: str) -> float:
    """'35d' -> 35.0; validated Prometheus durations only (h, d, w)."""
    return float(duration[:-1]) * _DURATION_DAYS[duration[-1]]


def slo_problems(
    environment: str, slos: SloConfig, services: tuple[MeshService, ...], retention: str
) -> list[Problem]:
    """An objective must name a declared service, in that service's namespace, and Prometheus
    must keep the whole 30-day error-budget window (plus a day of margin). In production every
    objective links a runbook: its alerts page someone."""
    problems = []
    if slos.objectives and _days(retention) < 31:
        problems.append(
            Problem(
                "observability.prometheus.retention",
                retention,
                "must be at least 31d while SLO objectives are declared: the error budget is "
                "computed over 30 days of data",
            )
        )
    by_name = {s.name: s for s in services}
    for i, objective in enumerate(slos.objectives):
        key = f"slos.objectives[{i}]"
        if environment == "production" and objective.runbook_url is None:
            problems.append(
                Problem(
                    f"{key}.runbookUrl",
                    MISSING,
                    "is required in production: every page links the runbook of its objective",
                )
            )
        unknown = unknown_service(f"{key}.service", objective.service, services)
        if unknown:
            problems.append(unknown)
        elif by_name[objective.service].namespace != objective.namespace:
            declared = by_name[objective.service].namespace
            problems.append(
                Problem(
                    f"{key}.namespace",
                    objective.namespace,
                    f"must be {declared!r}, the namespace service {objective.service!r} is in",
                )
            )
    return problems


SECRET_FIELDS: tuple[str, ...] = tuple(
    name
    for name, field in PlatformConfig.model_fields.items()
    if SecretStr in (field.annotation, *get_args(field.annotation))
)


def profile(environment: str) -> dict[str, Any]:
    """The defaults an environment starts from, keyed as in stack files."""
    base: dict[str, Any] = {"name": f"mesh-{environment}"}
    for key, section in SECTIONS.items():
        base[key] = copy.deepcopy(section.DEFAULTS[environment])  # type: ignore[attr-defined]
    return base


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge objects; lists and scalars in the stack file replace the profile's."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


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
    if environment not in ENVIRONMENTS:
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
    merged = _merge(profile(environment), data)
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
    return parse(raw, secrets)
