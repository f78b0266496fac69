"""The Pulumi-owned DigitalOcean load balancer in front of the ingress gateway's node ports, the
firewall that admits those ports from it only, and the DNS records of the exposed hosts.
Pure builders of provider arguments: no Pulumi import.

One owner: the load balancer is a `digitalocean.LoadBalancer` targeting the workload pool by its
droplet tag, never a Service of type LoadBalancer (the cloud controller would create and own a
second one). It depends on the VPC and the workload droplet tag only (both outlive the cluster),
not on the cluster or its pools, so rebuilding or replacing the cluster keeps the same load
balancer and public IP, and DNS never changes. TCP passthrough on 80/443 (TLS terminates at the
Istio gateway) with PROXY protocol on both ends.
"""

from __future__ import annotations

from typing import Any

from components.edge.config import IngressConfig
from components.edge.gateway import (
    HEALTH_PATH,
    HTTP_NODE_PORT,
    HTTPS_NODE_PORT,
    NODE_PORTS,
    STATUS_NODE_PORT,
)

EVERYWHERE = ["0.0.0.0/0", "::/0"]


def load_balancer_name(vpc_name: str) -> str:
    """Follows the VPC's name, which is unique per region and range: a new VPC replaces the
    load balancer too (`vpc_uuid` and `region` force it), and the replacement is created
    before the old one is deleted, so a name fixed per stack may be taken: the API's
    validation refuses a second load balancer of one name ("There is already a load balancer
    with that name", reported in digitalocean-cloud-controller-manager issue #910; the API
    specification does not say it). A rename alone is an update, so this costs nothing."""
    return f"{vpc_name}-ingress"


def load_balancer_args(
    name: str, region: str, ingress: IngressConfig, workload_tag: Any
) -> dict[str, Any]:
    """Everything but the VPC id: forwarding, health check, PROXY protocol, firewall, size."""
    return {
        "name": name,
        "region": region,
        "type": "REGIONAL",
        "size_unit": ingress.size_unit,
        "droplet_tag": workload_tag,
        "forwarding_rules": [
            {
                "entry_port": 80,
                "entry_protocol": "tcp",
                "target_port": HTTP_NODE_PORT,
                "target_protocol": "tcp",
            },
            {
                "entry_port": 443,
                "entry_protocol": "tcp",
                "target_port": HTTPS_NODE_PORT,
                "target_protocol": "tcp",
            },
        ],
        "healthcheck": {
            "protocol": "http",
            "port": STATUS_NODE_PORT,
            "path": HEALTH_PATH,
            "check_interval_seconds": 5,
            "response_timeout_seconds": 3,
            "healthy_threshold": 2,
            "unhealthy_threshold": 2,
        },
        "enable_proxy_protocol": True,
        "firewall": {"allows": [f"cidr:{c}" for c in ingress.source_ranges]},
    }


def node_port_firewall_args(
    stack_name: str, workload_tag: Any, load_balancer_id: Any
) -> dict[str, Any]:
    """Workload nodes accept the gateway node ports from our load balancer only (DigitalOcean
    firewalls also filter VPC traffic). Outbound stays open, as in the cluster's own firewalls;
    rules of several firewalls on one droplet add up."""
    return {
        "name": f"{stack_name}-ingress-node-ports",
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


def dns_records(ingress: IngressConfig) -> list[dict[str, Any]]:
    """One A record per exposed host (the value, the load balancer IP, is filled in later)."""
    return [
        {
            "name": ingress.record_name(host),
            "type": "A",
            "ttl": ingress.dns_ttl,
            "host": host,
        }
        for host in ingress.hosts
    ]
