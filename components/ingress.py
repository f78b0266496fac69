"""The way in: a Pulumi-owned DigitalOcean load balancer -> ingress gateway node ports, DNS
records for the exposed hosts, cert-manager TLS (`certificates.py`) and the public Istio Gateway.

One owner: the load balancer is a `digitalocean.LoadBalancer` targeting the workload pool by its
droplet tag, never a Service of type LoadBalancer (the cloud controller would create and own a
second one). It depends on the VPC and the workload droplet tag only (both outlive the cluster),
not on the cluster or its pools, so rebuilding or replacing the cluster keeps the same load
balancer and public IP, and DNS never changes. TCP passthrough on 80/443 (TLS terminates at the
Istio gateway) with PROXY protocol on both ends. A firewall on the same tag admits the gateway
node ports from this load balancer only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_digitalocean as do

from components import mesh
from components.certificates import (
    CERT_MANAGER_RELEASE,
    CERT_MANAGER_REPOSITORY,
    CERT_MANAGER_VERSION,
    INGRESS_TLS_SECRET,
    cert_manager_values,
    cluster_issuer,
    dns_token_secret,
    ingress_certificate,
)
from components.charts import release
from components.objects import register

if TYPE_CHECKING:
    from components.config import PlatformConfig
    from components.istio import IstioControlPlane
    from components.namespaces import PlatformNamespaces

HEALTH_PATH = "/healthz/ready"
NODE_PORTS = (
    mesh.INGRESS_HTTP_NODE_PORT,
    mesh.INGRESS_HTTPS_NODE_PORT,
    mesh.INGRESS_STATUS_NODE_PORT,
)
EVERYWHERE = ["0.0.0.0/0", "::/0"]


def load_balancer_args(cfg: PlatformConfig, workload_tag: Any) -> dict[str, Any]:
    """Everything but the VPC id: forwarding, health check, PROXY protocol, firewall, size."""
    return {
        "name": f"{cfg.name}-ingress",
        "region": cfg.cluster.region,
        "type": "REGIONAL",
        "size_unit": cfg.ingress.size_unit,
        "droplet_tag": workload_tag,
        "forwarding_rules": [
            {
                "entry_port": 80,
                "entry_protocol": "tcp",
                "target_port": mesh.INGRESS_HTTP_NODE_PORT,
                "target_protocol": "tcp",
            },
            {
                "entry_port": 443,
                "entry_protocol": "tcp",
                "target_port": mesh.INGRESS_HTTPS_NODE_PORT,
                "target_protocol": "tcp",
            },
        ],
        "healthcheck": {
            "protocol": "http",
            "port": mesh.INGRESS_STATUS_NODE_PORT,
            "path": HEALTH_PATH,
            "check_interval_seconds": 5,
            "response_timeout_seconds": 3,
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
        },
        "enable_proxy_protocol": True,
        "firewall": {"allows": [f"cidr:{c}" for c in cfg.ingress.source_ranges]},
    }


def node_port_firewall_args(
    cfg: PlatformConfig, workload_tag: Any, load_balancer_id: Any
) -> dict[str, Any]:
    """Workload nodes accept the gateway node ports from our load balancer only (DigitalOcean
    firewalls also filter VPC traffic). Outbound stays open, as in the cluster's own firewalls;
    rules of several firewalls on one droplet add up."""
    return {
        "name": f"{cfg.name}-ingress-node-ports",
        "tags": [workload_tag],
        "inbound_rules": [
            {
                "protocol": "tcp",
                "port_range": str(port),
                "source_load_balancer_uids": [load_balancer_id],
            }
            for port in NODE_PORTS
        ],
        "outbound_rules": [
            {"protocol": protocol, "port_range": "all", "destination_addresses": EVERYWHERE}
            for protocol in ("tcp", "udp")
        ]
        + [{"protocol": "icmp", "destination_addresses": EVERYWHERE}],
    }


def dns_records(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """One A record per exposed host (the value, the load balancer IP, is filled in later)."""
    return [
        {
            "name": cfg.ingress.record_name(host),
            "type": "A",
            "ttl": cfg.ingress.dns_ttl,
            "host": host,
        }
        for host in cfg.ingress.hosts
    ]


def public_gateway(cfg: PlatformConfig) -> dict[str, Any]:
    """The Istio Gateway serving the hosts: 80 redirects to HTTPS, 443 terminates TLS."""
    hosts = list(cfg.ingress.hosts)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {
            "name": mesh.PUBLIC_GATEWAY_NAME,
            "namespace": mesh.INGRESS_NAMESPACE,
            "labels": mesh.labels(mesh.PUBLIC_GATEWAY_NAME),
        },
        "spec": {
            "selector": dict(mesh.INGRESS_SELECTOR),
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": hosts,
                    "tls": {"httpsRedirect": True},
                },
                {
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "hosts": hosts,
                    "tls": {
                        "mode": "SIMPLE",
                        "credentialName": INGRESS_TLS_SECRET,
                        "minProtocolVersion": cfg.ingress.min_tls_version,
                    },
                },
            ],
        },
    }


def _slug(host: str) -> str:
    return host.replace(".", "-")


class IngressEdge(pulumi.ComponentResource):
    """Load balancer, DNS, cert-manager + issuer + certificate, public Gateway.

    `opts` carries the Kubernetes provider for in-cluster children; DigitalOcean children use
    the default DigitalOcean provider and depend on nothing in the cluster."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        *,
        vpc: do.Vpc,
        workload_tag: do.Tag,
        namespaces: PlatformNamespaces,
        istio: IstioControlPlane,
        project_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:ingress:IngressEdge", name, None, opts)
        protect = cfg.ingress.protect
        cloud = pulumi.ResourceOptions(parent=self, protect=protect)

        # The workload pool's droplet tag (a resource of its own, see DoksCluster): the load
        # balancer and firewall name it, so they wait for it, never for the cluster.
        self.tag = workload_tag
        self.load_balancer = do.LoadBalancer(
            f"{name}-lb", vpc_uuid=vpc.id, **load_balancer_args(cfg, self.tag.name), opts=cloud
        )
        self.ip = self.load_balancer.ip
        self.firewall = do.Firewall(
            f"{name}-node-ports",
            **node_port_firewall_args(cfg, self.tag.name, self.load_balancer.id),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.domain: do.Domain | None = None
        self.records: list[do.DnsRecord] = []
        if cfg.ingress.hosts and cfg.ingress.domain:
            zone: pulumi.Input[str] = cfg.ingress.domain
            if cfg.ingress.create_domain:
                self.domain = do.Domain(f"{name}-domain", name=cfg.ingress.domain, opts=cloud)
                zone = self.domain.name
            for record in dns_records(cfg):
                self.records.append(
                    do.DnsRecord(
                        f"{name}-dns-{_slug(record['host'])}",
                        domain=zone,
                        name=record["name"],
                        type=record["type"],
                        ttl=record["ttl"],
                        value=self.ip,
                        opts=cloud,
                    )
                )

        if project_id is not None:
            # Listed in the stack's DO project; a separate resource so the load balancer itself
            # never waits on the project (which waits on the cluster).
            urns: list[pulumi.Input[str]] = [self.load_balancer.load_balancer_urn]
            if self.domain is not None:
                urns.append(self.domain.domain_urn)
            do.ProjectResources(
                f"{name}-project-resources",
                project=project_id,
                resources=urns,
                opts=pulumi.ResourceOptions(parent=self),
            )

        cm_ns = namespaces.get(mesh.CERT_MANAGER_NAMESPACE)
        self.cert_manager = release(
            CERT_MANAGER_RELEASE,
            "cert-manager",
            mesh.CERT_MANAGER_NAMESPACE,
            cert_manager_values(cfg),
            pulumi.ResourceOptions(parent=self, depends_on=[cm_ns]),
            version=CERT_MANAGER_VERSION,
            repository=CERT_MANAGER_REPOSITORY,
        )
        self.issuer: pulumi.CustomResource | None = None
        self.certificate: pulumi.CustomResource | None = None
        self.gateway: pulumi.CustomResource | None = None
        if cfg.ingress.hosts:
            ingress_ns = namespaces.get(mesh.INGRESS_NAMESPACE)
            self._tls(cfg, cm_ns, ingress_ns)
            self.gateway = register(
                "gateway-public",
                public_gateway(cfg),
                pulumi.ResourceOptions(parent=self, depends_on=[*istio.crds_ready, ingress_ns]),
            )
        self.register_outputs({"ip": self.ip, "hosts": list(cfg.ingress.hosts)})

    def _tls(self, cfg: PlatformConfig, cm_ns: pulumi.Resource, ingress_ns: pulumi.Resource):
        assert cfg.dns_api_token is not None  # enforced by config (ingress_problems)
        token = pulumi.Output.secret(cfg.dns_api_token.get_secret_value())
        self.dns_token = register(
            "cert-manager-dns-token",
            dns_token_secret(token),
            pulumi.ResourceOptions(parent=self, depends_on=[cm_ns]),
        )
        self.issuer = register(
            "cluster-issuer-letsencrypt",
            cluster_issuer(cfg),
            pulumi.ResourceOptions(parent=self, depends_on=[self.cert_manager, self.dns_token]),
        )
        self.certificate = register(
            "certificate-ingress-tls",
            ingress_certificate(cfg),
            pulumi.ResourceOptions(
                parent=self, depends_on=[self.cert_manager, self.issuer, ingress_ns]
            ),
        )
