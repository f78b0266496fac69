"""TLS for the exposed hosts: cert-manager (official chart, pinned), a Let's Encrypt
ClusterIssuer solving DNS-01 through DigitalOcean DNS, and the Certificate whose Secret the
ingress gateway serves (it lives in `istio-ingress`, where the gateway reads credentials).

Why `helm.v3.Release`: cert-manager's chart runs its `startupapicheck` as a post-install hook,
which `helm.v4.Chart` drops; the Release also waits until the webhook is ready, so the issuer and
certificate that depend on it are not refused by a webhook that is not serving yet.

DNS-01 (not HTTP-01): it needs no path through the load balancer or the gateway, works before
DNS points at the load balancer, and the DigitalOcean token is only ever a Pulumi secret inside
a Kubernetes Secret.
"""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.base.workload import spread
from components.cluster.pools import WORKLOAD_POOL_LABEL
from components.edge.config import ACME_SERVERS, IngressConfig

CERT_MANAGER_API = "cert-manager.io/v1"
CERT_MANAGER_RELEASE = "cert-manager"  # release name: prefix of the chart's object names

CLUSTER_ISSUER = "letsencrypt"
DNS_TOKEN_SECRET = "digitalocean-dns"  # in the cert-manager namespace (its cluster resource ns)
DNS_TOKEN_KEY = "access-token"
ACME_ACCOUNT_SECRET = "letsencrypt-account-key"
INGRESS_CERTIFICATE = "ingress-tls"
INGRESS_TLS_SECRET = "ingress-tls"  # credentialName of the public Gateway's HTTPS server


def cert_manager_values(ingress: IngressConfig) -> dict[str, Any]:
    """Chart values: CRDs installed and kept on uninstall; controller and webhook replicas per the
    profile (leader election); above one, a budget that always allows one eviction, spread across
    nodes. Placed on the workload pool on purpose: the tainted system pool is sized for istiod's
    autoscaling, and cert-manager is off the request path (a renewal can wait for a node)."""
    replicas = ingress.cert_manager_replicas
    values: dict[str, Any] = {
        "crds": {"enabled": True, "keep": True},
        # Every cert-manager pod (controller, webhook, cainjector, startupapicheck job).
        "global": {"nodeSelector": dict(WORKLOAD_POOL_LABEL)},
        "replicaCount": replicas,
        "resources": ingress.cert_manager_resources.controller.helm(),
        "topologySpreadConstraints": spread(_pod_labels("cert-manager", "controller"), False),
        "webhook": {
            "replicaCount": replicas,
            "resources": ingress.cert_manager_resources.webhook.helm(),
            "topologySpreadConstraints": spread(_pod_labels("webhook", "webhook"), False),
        },
        "cainjector": {"resources": ingress.cert_manager_resources.cainjector.helm()},
        # Find the zone through public resolvers rather than the cluster's DNS, then check the
        # TXT record at DigitalOcean's authoritative nameservers (cert-manager's default).
        # Checking through the resolvers alone (`dns01RecursiveNameserversOnly`) would wait out
        # the "no such name" they cached when the solver first looked the record up (the
        # chart's own warning, v1.21.1 values.yaml).
        "dns01RecursiveNameservers": "1.1.1.1:53,8.8.8.8:53",
    }
    if replicas > 1:
        values["podDisruptionBudget"] = {"enabled": True, "maxUnavailable": 1}
        values["webhook"]["podDisruptionBudget"] = {"enabled": True, "maxUnavailable": 1}
    return values


def _pod_labels(name: str, component: str) -> dict[str, str]:
    """Labels the chart puts on a component's pods (its Deployment selector)."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": CERT_MANAGER_RELEASE,
        "app.kubernetes.io/component": component,
    }


def dns_token_secret(token: Any = "") -> dict[str, Any]:
    """The DigitalOcean token cert-manager's DNS-01 solver reads. `token` is a Pulumi secret
    Output when registered; the builder itself never sees the plain value."""
    return manifests.secret(
        DNS_TOKEN_SECRET, mesh.CERT_MANAGER_NAMESPACE, DNS_TOKEN_SECRET, {DNS_TOKEN_KEY: token}
    )


def cluster_issuer(ingress: IngressConfig) -> dict[str, Any]:
    """Let's Encrypt (the endpoint `ingress.acmeServer` names) with a DigitalOcean DNS-01 solver
    limited to our zone."""
    solver: dict[str, Any] = {
        "dns01": {
            "digitalocean": {"tokenSecretRef": {"name": DNS_TOKEN_SECRET, "key": DNS_TOKEN_KEY}}
        }
    }
    if ingress.domain:
        solver["selector"] = {"dnsZones": [ingress.domain]}
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "ClusterIssuer",
        "metadata": {"name": CLUSTER_ISSUER, "labels": manifests.labels(CLUSTER_ISSUER)},
        "spec": {
            "acme": {
                "server": ACME_SERVERS[ingress.acme_server],
                "email": ingress.acme_email,
                "privateKeySecretRef": {"name": ACME_ACCOUNT_SECRET},
                "solvers": [solver],
            }
        },
    }


def ingress_certificate(ingress: IngressConfig) -> dict[str, Any]:
    """One certificate for every exposed host; its Secret is the gateway's credentialName."""
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": {
            "name": INGRESS_CERTIFICATE,
            "namespace": mesh.INGRESS_NAMESPACE,
            "labels": manifests.labels(INGRESS_CERTIFICATE),
        },
        "spec": {
            "secretName": INGRESS_TLS_SECRET,
            "dnsNames": list(ingress.hosts),
            "issuerRef": {
                "name": CLUSTER_ISSUER,
                "kind": "ClusterIssuer",
                "group": "cert-manager.io",
            },
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            # No duration/renewBefore: Let's Encrypt ignores a requested lifetime and is
            # shortening it; cert-manager renews at 2/3 of whatever lifetime is issued.
            "secretTemplate": {"labels": manifests.labels(INGRESS_TLS_SECRET)},
        },
    }
