"""The `ingress` config section: the public way in (Pulumi-owned load balancer, DNS zone and
records, Let's Encrypt certificate, TLS policy, cert-manager's size), with per-tier profiles;
and the ingress gateway's local rate limit (`security.ingressRateLimit`). `ingress_problems`
holds the rules that span fields or that the tier sets. Pure: no Pulumi.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import SecretStr, field_validator

from components.base.model import MISSING, Cidr, ConfigModel, Problem, between, hostname
from components.base.profiles import Profile
from components.base.workload import PodResources, pod_resources

_EMAIL = re.compile(r"^[^@\s]+@([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")

ACME_SERVERS = {
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "production": "https://acme-v02.api.letsencrypt.org/directory",
}


@dataclass(frozen=True)
class EdgeRules:
    """What a tier demands of the way in."""

    trusted_certificates: bool  # Let's Encrypt's production endpoint
    protect: bool  # load balancer, zone and records protected


class CertManagerResources(ConfigModel):
    """Requests and memory limit of cert-manager's three pods (the chart requests nothing)."""

    controller: PodResources
    webhook: PodResources
    cainjector: PodResources


# (cpu request, memory request, memory limit) per pod: the controller caches every
# Certificate, Secret and Order it watches; the cainjector every webhook and CRD it patches.
_CERT_MANAGER_RESOURCES = {
    "small": {
        "controller": pod_resources("10m", "64Mi", "256Mi"),
        "webhook": pod_resources("10m", "32Mi", "128Mi"),
        "cainjector": pod_resources("10m", "64Mi", "256Mi"),
    },
    "production": {
        "controller": pod_resources("50m", "128Mi", "512Mi"),
        "webhook": pod_resources("20m", "64Mi", "256Mi"),
        "cainjector": pod_resources("20m", "128Mi", "512Mi"),
    },
}


def _defaults(
    acme_server: str, size_unit: int, dns_ttl: int, replicas: int, protect: bool, sizes: str
):
    return {
        "hosts": [],
        "createDomain": True,
        "acmeServer": acme_server,
        "sourceRanges": ["0.0.0.0/0"],
        "sizeUnit": size_unit,
        "dnsTtl": dns_ttl,
        "minTlsVersion": "TLSV1_2",
        "certManagerReplicas": replicas,
        "certManagerResources": _CERT_MANAGER_RESOURCES[sizes],
        "protect": protect,
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
    # cert-manager controller and webhook replicas (leader election; 2+ get a budget).
    cert_manager_replicas: int
    # Requests and memory limit of the controller, webhook and cainjector pods.
    cert_manager_resources: CertManagerResources
    # Protect the load balancer, DNS zone and records against deletion.
    protect: bool

    PROFILES: ClassVar[dict[str, Profile[EdgeRules]]] = {
        "dev": Profile(
            _defaults("staging", 1, 300, 1, protect=False, sizes="small"), EdgeRules(False, False)
        ),
        "staging": Profile(
            _defaults("production", 1, 300, 2, protect=False, sizes="small"),
            EdgeRules(False, False),
        ),
        "production": Profile(
            _defaults("production", 2, 1800, 2, protect=True, sizes="production"),
            EdgeRules(True, True),
        ),
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
    _cert_manager = field_validator("cert_manager_replicas")(between(1, 5))

    def record_name(self, host: str) -> str:
        """The DNS record name of `host` inside the zone ('@' for the apex)."""
        assert self.domain is not None
        return "@" if host == self.domain else host.removesuffix(f".{self.domain}")


def ingress_problems(
    ingress: IngressConfig, rules: EdgeRules, environment: str, dns_api_token: SecretStr | None
) -> list[Problem]:
    """Rules spanning fields: hosts need a zone that contains them, an ACME e-mail and the DNS
    token cert-manager solves DNS-01 with; the tier may demand trusted certificates and
    protection. `environment` is only named in messages."""
    problems: list[Problem] = []
    if ingress.hosts:
        if ingress.domain is None:
            problems.append(
                Problem(
                    "ingress.domain",
                    MISSING,
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
                    MISSING,
                    "is required when ingress.hosts is set (Let's Encrypt account)",
                )
            )
        if dns_api_token is None or not dns_api_token.get_secret_value():
            problems.append(
                Problem(
                    "dnsApiToken",
                    MISSING,
                    "is required when ingress.hosts is set (cert-manager DNS-01 through "
                    "DigitalOcean): "
                    "pulumi config set --secret service-mesh:dnsApiToken <token>",
                )
            )
    if rules.trusted_certificates and ingress.acme_server != "production":
        problems.append(
            Problem(
                "ingress.acmeServer",
                ingress.acme_server,
                f"must be 'production' in {environment} (trusted certificates)",
            )
        )
    if rules.protect and not ingress.protect:
        problems.append(
            Problem(
                "ingress.protect",
                False,
                f"must be true in {environment} (load balancer IP and DNS are identity-bearing)",
            )
        )
    return problems


class RateLimit(ConfigModel):
    """Local (per gateway replica) token bucket on the ingress gateway."""

    enabled: bool
    requests_per_interval: int
    interval_seconds: int

    _positive = field_validator("requests_per_interval", "interval_seconds")(between(1, 1_000_000))
