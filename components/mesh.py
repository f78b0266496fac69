"""Names every layer of the mesh agrees on: namespaces, gateway selectors and identities,
well-known Istio ports and labels. One place, so that a policy, a NetworkPolicy and a Helm
value can never disagree about what the ingress gateway is called."""

from __future__ import annotations

ROOT_NAMESPACE = "istio-system"  # Istio's root namespace: mesh-wide policies live here.
INGRESS_NAMESPACE = "istio-ingress"
EGRESS_NAMESPACE = "istio-egress"
MONITORING_NAMESPACE = "monitoring"
CERT_MANAGER_NAMESPACE = "cert-manager"

INGRESS_GATEWAY = "istio-ingressgateway"  # release, Deployment and ServiceAccount name
EGRESS_GATEWAY = "istio-egressgateway"
INGRESS_SELECTOR = {"istio": "ingressgateway"}
EGRESS_SELECTOR = {"istio": "egressgateway"}

TRUST_DOMAIN = "cluster.local"


def principal(namespace: str, service_account: str) -> str:
    """SPIFFE-style principal Istio authorization matches for a workload identity."""
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


INGRESS_PRINCIPAL = principal(INGRESS_NAMESPACE, INGRESS_GATEWAY)

# Namespaces istiod watches carry this label (meshConfig.discoverySelectors).
DISCOVERY_LABEL = {"service-mesh/discovery": "enabled"}
# Injection is selected through a revision tag, not `istio-injection`, for canary upgrades.
REVISION_LABEL = "istio.io/rev"

# Well-known Istio ports.
XDS_PORT = 15012  # istiod xDS + CA (mTLS)
STATUS_PORT = 15021  # gateway readiness: /healthz/ready
MERGED_METRICS_PORT = 15020  # istio-agent merged Prometheus metrics
ENVOY_METRICS_PORT = 15090  # Envoy's own /stats/prometheus
WEBHOOK_PORT = 15017  # istiod injection/validation webhook

# The ingress gateway Service is NodePort with these fixed node ports; the Pulumi-owned load
# balancer forwards 80/443 (TCP, PROXY protocol) to them and health-checks the status port.
INGRESS_HTTP_NODE_PORT = 30080  # -> gateway port 80
INGRESS_HTTPS_NODE_PORT = 30443  # -> gateway port 443
INGRESS_STATUS_NODE_PORT = 30021  # -> STATUS_PORT, /healthz/ready
# The public Istio Gateway (networking.istio.io/v1) VirtualServices bind to: "<ns>/<name>".
PUBLIC_GATEWAY_NAME = "public"
PUBLIC_GATEWAY = f"{INGRESS_NAMESPACE}/{PUBLIC_GATEWAY_NAME}"

COMMON_LABELS = {
    "app.kubernetes.io/part-of": "service-mesh",
    "app.kubernetes.io/managed-by": "pulumi",
}


def labels(name: str, **extra: str) -> dict[str, str]:
    """The labels every object we author carries (DESIGN.md conventions)."""
    return {"app.kubernetes.io/name": name, **COMMON_LABELS, **extra}
