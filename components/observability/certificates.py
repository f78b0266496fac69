"""Alerts before the public certificate lapses. cert-manager renews a Let's Encrypt certificate a
third of its life before expiry, and Let's Encrypt no longer e-mails expiry notices (since June
2025), so a renewal that keeps failing (a revoked DNS token, a rate limit, a changed zone) would
otherwise be noticed only when browsers refuse the site. cert-manager's controller exports the
state of every Certificate (v1.21.1 `internal/collectors/certificate_collector.go`); Prometheus
scrapes it through `cert_manager_service_monitor` and these rules page or file a ticket, routed
like every other alert by `severity`. Pure: no Pulumi.
"""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.edge.tls import CERT_MANAGER_RELEASE

API_VERSION = "monitoring.coreos.com/v1"
RULE_NAME = "certificate-expiry"
DAY = 86_400
# Let's Encrypt certificates live 90 days and cert-manager renews them 30 days before expiry:
# 21 days left means renewals have failed for 9 days; 7 days left, act now.
TICKET_DAYS = 21
PAGE_DAYS = 7
METRICS_PORT_NAME = "http-metrics"  # the chart's `cert-manager` Service, port 9402
# Both controller replicas may export the same Certificate: one value per Certificate.
EXPIRY = "min by (namespace, name) (certmanager_certificate_expiration_timestamp_seconds)"
NOT_READY = 'max by (namespace, name) (certmanager_certificate_ready_status{condition="False"})'


def cert_manager_service_monitor() -> dict[str, Any]:
    """cert-manager's controller metrics: the `cert-manager` Service the chart renders while
    `prometheus.enabled` (its default) and no PodMonitor is asked for, selected by its labels."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": {
            "name": CERT_MANAGER_RELEASE,
            "namespace": mesh.MONITORING_NAMESPACE,
            "labels": manifests.labels("cert-manager"),
        },
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "cert-manager",
                    "app.kubernetes.io/instance": CERT_MANAGER_RELEASE,
                    "app.kubernetes.io/component": "controller",
                }
            },
            "namespaceSelector": {"matchNames": [mesh.CERT_MANAGER_NAMESPACE]},
            "endpoints": [{"port": METRICS_PORT_NAME, "interval": "60s"}],
        },
    }


def _alert(
    name: str, expr: str, for_: str, severity: str, environment: str, summary: str, text: str
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, "environment": environment},
        "annotations": {"summary": summary, "description": text},
    }


def certificate_alerts(environment: str) -> list[dict[str, Any]]:
    """Expiring (ticket at 21 days, page at 7) and not ready (ticket): a Certificate stuck
    in a failed issuance is what precedes both."""
    left = f"({EXPIRY} - time())"
    where = "Certificate {{ $labels.namespace }}/{{ $labels.name }}"
    return [
        _alert(
            "CertificateExpiresSoon",
            f"{left} < {TICKET_DAYS} * {DAY}",
            "1h",
            "ticket",
            environment,
            f"{where} expires in less than {TICKET_DAYS} days",
            "cert-manager renews 30 days before expiry, so renewals have been failing for days: "
            "see `kubectl describe certificate` and the cert-manager logs.",
        ),
        _alert(
            "CertificateExpiresImminently",
            f"{left} < {PAGE_DAYS} * {DAY}",
            "10m",
            "page",
            environment,
            f"{where} expires in less than {PAGE_DAYS} days",
            "Browsers will refuse the site when it expires: fix the issuance now "
            "(DNS token, Let's Encrypt rate limits, the DNS zone).",
        ),
        _alert(
            "CertificateNotReady",
            f"{NOT_READY} == 1",
            "30m",
            "ticket",
            environment,
            f"{where} is not ready",
            "Its last issuance or renewal failed: see `kubectl describe certificate`.",
        ),
    ]


def certificate_rule(environment: str) -> dict[str, Any]:
    """The PrometheusRule holding the certificate alerts (Prometheus selects every rule)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": manifests.metadata(RULE_NAME, mesh.MONITORING_NAMESPACE, "certificates"),
        "spec": {"groups": [{"name": "certificates", "rules": certificate_alerts(environment)}]},
    }
