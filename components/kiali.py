"""Kiali, the mesh console: kiali-server chart values. Login is a Kubernetes token (or OpenID
when configured), never anonymous; Prometheus, Grafana and Tempo are reached through the
in-cluster Service names their charts create (see the URL constants of each module)."""

from __future__ import annotations

from typing import Any

from components import mesh
from components.metrics import GRAFANA_URL, PROMETHEUS_DATASOURCE_UID, PROMETHEUS_URL
from components.observability_config import ObservabilityConfig
from components.tracing import TEMPO_DATASOURCE_UID, TEMPO_URL

KIALI_CHART = "kiali-server"
KIALI_VERSION = "2.29.0"
KIALI_REPO = "https://kiali.org/helm-charts"
KIALI_RELEASE = "kiali"
KIALI_PORT = 20001  # server.port


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
        "deployment": {
            "cluster_wide_access": True,
            "view_only_mode": False,
            "ingress": {"enabled": False},  # reached through kubectl port-forward only
        },
        "external_services": {
            "istio": {"root_namespace": mesh.ROOT_NAMESPACE},
            "prometheus": {"url": PROMETHEUS_URL},
            "grafana": {
                "enabled": True,
                "internal_url": GRAFANA_URL,
                "datasource_uid": PROMETHEUS_DATASOURCE_UID,
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
