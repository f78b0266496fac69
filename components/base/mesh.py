"""Names every layer of the mesh agrees on: namespaces, gateway selectors and identities,
well-known Istio ports and labels. One place, so that a policy, a NetworkPolicy and a Helm
value can never disagree about what the ingress gateway is called. (The way in's own node
ports and public Gateway are in `components/edge/gateway.py`.)"""

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
# Kubernetes sets this label on every namespace, also on those we do not create.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Namespaces we do not own that istiod must still see, selected by their name: with
# REGISTRY_ONLY a sidecar black-holes every destination missing from its registry, so kube-dns
# (DNS over TCP) in `kube-system` and the `kubernetes` API Service in `default` must be in it.
# (Whether a pod may then reach them is the NetworkPolicies' decision: DNS yes, the API no.)
DNS_NAMESPACE = "kube-system"
API_NAMESPACE = "default"
DISCOVERED_BY_NAME = (DNS_NAMESPACE, API_NAMESPACE)
# Injection is selected through a revision tag, not `istio-injection`, for canary upgrades.
REVISION_LABEL = "istio.io/rev"

# Well-known Istio ports.
XDS_PORT = 15012  # istiod xDS + CA (mTLS)
STATUS_PORT = 15021  # gateway readiness: /healthz/ready
MERGED_METRICS_PORT = 15020  # istio-agent merged Prometheus metrics
ENVOY_METRICS_PORT = 15090  # Envoy's own /stats/prometheus
WEBHOOK_PORT = 15017  # istiod injection/validation webhook
