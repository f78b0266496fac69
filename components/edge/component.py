"""`IngressEdge`: registers the way in that `load_balancer.py`, `tls.py` and `gateway.py`
describe — the load balancer and its node-port firewall, DNS, cert-manager with its issuer and
certificate, and the public Gateway.

Why cert-manager is a `helm.v3.Release`: its chart runs `startupapicheck` as a post-install hook,
which `helm.v4.Chart` drops; the Release also waits until the webhook is ready, so the issuer and
certificate that depend on it are not refused by a webhook that is not serving yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.base import manifests, mesh, pins
from components.base.resources import register, release
from components.edge.config import IngressConfig
from components.edge.gateway import public_gateway
from components.edge.load_balancer import (
    dns_records,
    load_balancer_args,
    load_balancer_name,
    node_port_firewall_args,
)
from components.edge.tls import (
    CERT_MANAGER_RELEASE,
    cert_manager_values,
    cluster_issuer,
    dns_token_secret,
    ingress_certificate,
)


@dataclass(frozen=True)
class IngressEdgeArgs:
    stack_name: str  # names the node-port firewall
    region: str  # the cluster's region: the load balancer lives beside its nodes
    vpc_name: str  # the cluster's VPC's name, which the load balancer's follows
    ingress: IngressConfig
    # The DigitalOcean token cert-manager solves DNS-01 with (a Pulumi secret); set when
    # `ingress.hosts` is (config refuses hosts without it).
    dns_api_token: pulumi.Input[str] | None
    vpc_id: pulumi.Input[str]
    # The workload pool's droplet tag name, from its own `do.Tag` resource: the load balancer
    # and firewall wait for the tag, never for the cluster.
    workload_tag: pulumi.Input[str]
    project_id: pulumi.Input[str]  # the stack's DO project, which lists the LB and the zone
    namespaces: Mapping[str, pulumi.Resource]  # cert-manager's and istio-ingress
    crds_ready: Sequence[pulumi.Resource]  # Istio CRDs and istiod's webhook


class IngressEdge(pulumi.ComponentResource):
    """Load balancer, DNS, cert-manager + issuer + certificate, public Gateway.

    `opts` carries the Kubernetes provider for in-cluster children; DigitalOcean children use
    the default DigitalOcean provider and depend on nothing in the cluster."""

    def __init__(
        self, name: str, args: IngressEdgeArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:ingress:IngressEdge", name, None, opts)
        ingress = args.ingress
        cloud = pulumi.ResourceOptions(parent=self, protect=ingress.protect)

        self.load_balancer = do.LoadBalancer(
            f"{name}-lb",
            vpc_uuid=args.vpc_id,
            **load_balancer_args(
                load_balancer_name(args.vpc_name), args.region, ingress, args.workload_tag
            ),
            opts=cloud,
        )
        self.ip = self.load_balancer.ip
        self.firewall = do.Firewall(
            f"{name}-node-ports",
            **node_port_firewall_args(args.stack_name, args.workload_tag, self.load_balancer.id),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.domain: do.Domain | None = None
        self.records: list[do.DnsRecord] = []
        if ingress.hosts and ingress.domain:
            zone: pulumi.Input[str] = ingress.domain
            if ingress.create_domain:
                # The zone outlives the program's use of it: it may hold records Pulumi never
                # made (mail, verification), which deleting the zone would take with it. Removing
                # `hosts`, or destroying the stack, deletes only the A records Pulumi made.
                self.domain = do.Domain(
                    f"{name}-domain",
                    name=ingress.domain,
                    opts=pulumi.ResourceOptions.merge(
                        cloud, pulumi.ResourceOptions(retain_on_delete=True)
                    ),
                )
                zone = self.domain.name
            for record in dns_records(ingress):
                self.records.append(
                    do.DnsRecord(
                        f"{name}-dns-{manifests.slug(record['host'])}",
                        domain=zone,
                        name=record["name"],
                        type=record["type"],
                        ttl=record["ttl"],
                        value=self.ip,
                        opts=cloud,
                    )
                )

        # Listed in the stack's DO project; a separate resource so the load balancer itself
        # never waits on the project (which waits on the cluster).
        urns: list[pulumi.Input[str]] = [self.load_balancer.load_balancer_urn]
        if self.domain is not None:
            urns.append(self.domain.domain_urn)
        do.ProjectResources(
            f"{name}-project-resources",
            project=args.project_id,
            resources=urns,
            opts=pulumi.ResourceOptions(parent=self),
        )

        cm_ns = args.namespaces[mesh.CERT_MANAGER_NAMESPACE]
        self.cert_manager = release(
            CERT_MANAGER_RELEASE,
            pins.CERT_MANAGER,
            mesh.CERT_MANAGER_NAMESPACE,
            cert_manager_values(ingress),
            pulumi.ResourceOptions(parent=self, depends_on=[cm_ns]),
        )
        self.issuer: pulumi.CustomResource | None = None
        self.certificate: pulumi.CustomResource | None = None
        self.gateway: pulumi.CustomResource | None = None
        if ingress.hosts:
            ingress_ns = args.namespaces[mesh.INGRESS_NAMESPACE]
            self._tls(args, cm_ns, ingress_ns)
            self.gateway = register(
                "gateway-public",
                public_gateway(ingress),
                pulumi.ResourceOptions(parent=self, depends_on=[*args.crds_ready, ingress_ns]),
            )
        self.register_outputs({"ip": self.ip, "hosts": list(ingress.hosts)})

    def _tls(self, args: IngressEdgeArgs, cm_ns: pulumi.Resource, ingress_ns: pulumi.Resource):
        if args.dns_api_token is None:  # refused by config first (ingress_problems)
            raise ValueError("ingress.hosts needs dnsApiToken")
        self.dns_token = register(
            "cert-manager-dns-token",
            dns_token_secret(pulumi.Output.secret(args.dns_api_token)),
            pulumi.ResourceOptions(parent=self, depends_on=[cm_ns]),
        )
        self.issuer = register(
            "cluster-issuer-letsencrypt",
            cluster_issuer(args.ingress),
            pulumi.ResourceOptions(parent=self, depends_on=[self.cert_manager, self.dns_token]),
        )
        self.certificate = register(
            "certificate-ingress-tls",
            ingress_certificate(args.ingress),
            pulumi.ResourceOptions(
                parent=self, depends_on=[self.cert_manager, self.issuer, ingress_ns]
            ),
        )
