"""The `ingress` config section: the public way in (Pulumi-owned load balancer, DNS zone and
records, Let's Encrypt certificate, TLS policy), with per-environment defaults.

Kept apart from `ingress.py` so `config.py` composes it without importing Pulumi resources.
`ingress_problems` holds the rules that span fields or need the environment.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import SecretStr, field_validator

from components.model import Cidr, ConfigModel, Problem, between, hostname

_EMAIL = re.compile(r"^[^@\s]+@([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")

ACME_SERVERS = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "production": "https://acme-v02.api.letsencrypt.org/directory",
}


class IngressConfig(ConfigModel):
    """The way in: load balancer -> ingress gateway, DNS and TLS for the exposed hosts."""

    # DigitalOcean DNS zone the hosts live in, e.g. 'example.com' (required when hosts are set).
    domain: str | None = None
    # Fully qualified host names to expose; each gets an A record and a name on the certificate.
    hosts: tuple[str, ...]
    # Create the DigitalOcean Domain (zone) here; false if it already exists in the account.
    create_domain: bool
    # Let's Encrypt account e-mail (expiry notices); required when hosts are set.
    acme_email: str | None = None
    # Let's Encrypt endpoint: 'staging' (untrusted certs, high limits) or 'production'.
    acme_server: Literal["staging", "production"]
    # Client CIDRs the load balancer firewall admits.
    source_ranges: tuple[Cidr, ...]
    # Load balancer size in nodes (1-100); each node adds capacity and redundancy.
    size_unit: int
    # TTL of the A records, in seconds.
    dns_ttl: int
    # Lowest TLS version the gateway accepts.
    min_tls_version: Literal["TLSV1_2", "TLSV1_3"]
    # Protect the load balancer, DNS zone and records against deletion.
    protect: bool

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {
        env: {
            "hosts": [],
            "createDomain": True,
            "acmeServer": acme,
            "sourceRanges": ["0.0.0.0/0"],
            "sizeUnit": size,
            "dnsTtl": ttl,
            "minTlsVersion": "TLSV1_2",
            "protect": env == "production",
        }
        for env, acme, size, ttl in (
            ("dev", "staging", 1, 300),
            ("staging", "production", 1, 300),
            ("production", "production", 2, 1800),
        )
    }

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return None if v is None else hostname(v)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for host in v:
            try:
                hostname(host)
            except ValueError:
                raise ValueError(
                    f"{host!r} is not a host name: each entry must be a fully qualified "
                    "lowercase host name such as 'api.example.com' (no scheme, port or '*')"
                ) from None
        if len(set(v)) != len(v):
            raise ValueError("lists a host twice; hosts must be unique")
        return v

    @field_validator("acme_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("must be an e-mail address such as 'platform@example.com'")
        return v

    _size = field_validator("size_unit")(between(1, 100, " load balancer nodes"))
    _ttl = field_validator("dns_ttl")(between(30, 86400, " seconds"))

    def record_name(self, host: str) -> str:
        """The DNS record name of `host` inside the zone ('@' for the apex)."""
        assert self.domain is not None
        return "@" if host == self.domain else host.removesuffix(f".{self.domain}")


def ingress_problems(
    environment: str, ingress: IngressConfig, dns_api_token: SecretStr | None
) -> list[Problem]:
    """Rules spanning fields: hosts need a zone that contains them, an ACME e-mail and the DNS
    token cert-manager solves DNS-01 with; production uses the trusted ACME endpoint."""
    problems: list[Problem] = []
    if ingress.hosts:
        if ingress.domain is None:
            problems.append(
                Problem(
                    "ingress.domain",
                    None,
                    "is required when ingress.hosts is set, e.g. 'example.com'",
                )
            )
        else:
            for i, host in enumerate(ingress.hosts):
                if host != ingress.domain and not host.endswith(f".{ingress.domain}"):
                    problems.append(
                        Problem(
                            f"ingress.hosts[{i}]",
                            host,
                            f"must be inside the DNS zone {ingress.domain!r}",
                        )
                    )
        if ingress.acme_email is None:
            problems.append(
                Problem(
                    "ingress.acmeEmail",
                    None,
                    "is required when ingress.hosts is set (Let's Encrypt account)",
                )
            )
        if dns_api_token is None or not dns_api_token.get_secret_value():
            problems.append(
                Problem(
                    "dnsApiToken",
                    None,
                    "is required when ingress.hosts is set (cert-manager DNS-01 through "
                    "DigitalOcean): "
                    "pulumi config set --secret service-mesh:dnsApiToken <token>",
                )
            )
    if environment == "production":
        if ingress.acme_server != "production":
            problems.append(
                Problem(
                    "ingress.acmeServer",
                    ingress.acme_server,
                    "must be 'production' in production (trusted certificates)",
                )
            )
        if not ingress.protect:
            problems.append(
                Problem(
                    "ingress.protect",
                    False,
                    "must be true in production (load balancer IP and DNS are identity-bearing)",
                )
            )
    return problems
