"""Kiali, the mesh console: kiali-server chart values. Login is a Kubernetes token (or OpenID
when configured), never anonymous; Prometheus, Grafana and Tempo are reached through the
in-cluster Service names their charts create (see the URL constants of each module).

Credentials never enter the values: Kiali reads them from Secrets named with the chart's
`secret:<name>:<key>` form, which the chart mounts. The login-token signing key in particular
is ours: left empty, the chart renders a fresh random key into its ConfigMap on every render,
so each `pulumi up` would diff, restart Kiali and log everyone out."""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.observability.config import ObservabilityConfig
from components.observability.metrics import (
    GRAFANA_ADMIN_SECRET,
    GRAFANA_ADMIN_USER,
    GRAFANA_BROWSER_URL,
    GRAFANA_PASSWORD_KEY,
    GRAFANA_URL,
    PROMETHEUS_DATASOURCE_UID,
    PROMETHEUS_URL,
)
from components.observability.tracing import TEMPO_DATASOURCE_UID, TEMPO_URL

KIALI_RELEASE = "kiali"  # = deployment.instance_name: Service, ServiceAccount, Deployment
SIGNING_SECRET = "kiali-signing-key"
SIGNING_KEY = "key"
SIGNING_KEY_LENGTH = 32  # Kiali accepts 16, 24 or 32 characters (an AES key)


def secret_ref(name: str, key: str) -> str:
    """Kiali's reference to a Secret value; the chart mounts it into the pod."""
    return f"secret:{name}:{key}"


def kiali_values(cfg: ObservabilityConfig) -> dict[str, Any]:
    """The chart turns its whole values into Kiali's config, so these are Kiali CR spec keys."""
    auth: dict[str, Any] = {"strategy": cfg.kiali.auth}
    if cfg.kiali.openid is not None:
        auth["openid"] = {
            "issuer_uri": cfg.kiali.openid.issuer_uri,
            "client_id": cfg.kiali.openid.client_id,
        }
    return {
        "auth": auth,
        "login_token": {"signing_key": secret_ref(SIGNING_SECRET, SIGNING_KEY)},
        "deployment": {
            "resources": cfg.resources.kiali.helm(),
            "cluster_wide_access": True,
            "view_only_mode": False,
            "ingress": {"enabled": False},  # reached through kubectl port-forward only
        },
        "external_services": {
            "prometheus": {"url": PROMETHEUS_URL},
            "grafana": {
                "enabled": True,
                "internal_url": GRAFANA_URL,
                # Off OpenShift, Kiali uses Grafana (dashboard links, and the trace links below
                # through its Tempo data source) only with an external URL, the one a browser
                # opens (kiali v2.29.0 grafana/grafana.go): the documented port-forward's.
                "external_url": GRAFANA_BROWSER_URL,
                "datasource_uid": PROMETHEUS_DATASOURCE_UID,
                # Grafana has no anonymous access: Kiali looks dashboards up as admin.
                "auth": {
                    "type": "basic",
                    "username": GRAFANA_ADMIN_USER,
                    "password": secret_ref(GRAFANA_ADMIN_SECRET, GRAFANA_PASSWORD_KEY),
                },
            },
            "tracing": {
                "enabled": True,
                "provider": "tempo",
                "internal_url": TEMPO_URL,
                # The single-binary Tempo chart serves no gRPC query port (9095).
                "use_grpc": False,
                "tempo_config": {"datasource_uid": TEMPO_DATASOURCE_UID, "url_format": "grafana"},
            },
        },
    }


def signing_key_secret(key: Any) -> dict[str, Any]:
    """Kiali's login-token signing key, from a Pulumi-generated random string."""
    return manifests.secret(SIGNING_SECRET, mesh.MONITORING_NAMESPACE, "kiali", {SIGNING_KEY: key})
