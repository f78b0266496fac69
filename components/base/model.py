"""Base of the typed configuration: the strict model every section derives from, the one error
type users see, the value checks sections share and the one deep merge. Pure (no Pulumi): each
concern declares its section beside its builders, and tools parse stacks without a runtime."""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

NAMESPACE = "service-mesh"


# An echoed value longer than this is cut (a whole mapping would bury the reason).
MAX_SHOWN = 80


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is, what it was, what is allowed. `namespace` is the config
    namespace the key was written under (only a mistyped namespace is not ours)."""

    key: str
    value: Any
    allowed: str
    namespace: str = NAMESPACE

    def __str__(self) -> str:
        return f"{self.namespace}:{self.key} = {shown(self.value)}: {self.allowed}"


def shown(value: Any) -> str:
    """A bad value as the user reads it: `<missing>`, never a secret, at most MAX_SHOWN
    characters."""
    text = "<missing>" if value is _MISSING else repr(_plain(value))
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _plain(value: Any) -> Any:
    """Never echo a secret back to the terminal, even a wrong one."""
    if hasattr(value, "get_secret_value"):
        return "[secret]"
    return value


class ConfigError(Exception):
    """Invalid stack configuration. `components.config.load` raises it as a Pulumi `RunError`
    (so `pulumi up` prints the message without a traceback); tools print it and exit 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Invalid stack configuration:\n{lines}")

    @classmethod
    def one(cls, key: str, value: Any, allowed: str) -> ConfigError:
        return cls([Problem(key, value, allowed)])


MISSING = _MISSING


class ConfigModel(BaseModel):
    """Frozen, closed (unknown keys rejected) model whose fields are written in camelCase in
    stack files, as Pulumi config keys conventionally are."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )


# --- reusable value checks (raise ValueError: pydantic attaches the key path) ---------------

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', starting with a letter, "
            "at most 63 characters"
        )
    return value


def hostname(value: str) -> str:
    if not _HOSTNAME.match(value):
        raise ValueError("must be a fully qualified lowercase host name such as 'api.example.com'")
    return value


def ipv4_cidr(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ValueError("must be an IPv4 CIDR such as '203.0.113.0/24' (host bits zero)") from None
    return str(net)


def private_cidr(value: str, min_prefix: int = 16, max_prefix: int = 24) -> str:
    cidr = ipv4_cidr(value)
    net = ipaddress.IPv4Network(cidr)
    rfc1918 = [ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
    if not any(net.subnet_of(block) for block in rfc1918) or not (
        min_prefix <= net.prefixlen <= max_prefix
    ):
        raise ValueError(
            f"must be an RFC 1918 range (10/8, 172.16/12, 192.168/16) between /{min_prefix} "
            f"and /{max_prefix}, e.g. '10.110.0.0/20'"
        )
    return cidr


Cidr = Annotated[str, AfterValidator(ipv4_cidr)]


def between(
    low: int, high: int, note: str = "", *, below: str = "", above: str = ""
) -> Callable[[int], int]:
    """A field check `low <= value <= high` whose message states the range: `note` (a unit)
    always, `below` or `above` only when that bound is the one violated (the reason a bound is
    there fits only a value on its side)."""

    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"must be between {low} and {high}{note}{below}")
        if value > high:
            raise ValueError(f"must be between {low} and {high}{note}{above}")
        return value

    return check


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Objects merge key by key; lists and scalars in `override` replace. Neither input is
    changed (profiles and values builders share nested dicts)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
