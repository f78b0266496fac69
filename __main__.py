"""Composes the service-mesh platform for one stack. No logic here: config is validated once,
each component gets its typed args (its config slice and the upstream outputs it needs), and
outputs are exported."""

import pulumi

from components import config
from components.base import mesh
from components.base.resources import secret_output
from components.cluster.component import DoksCluster, DoksClusterArgs
from components.edge.component import IngressEdge, IngressEdgeArgs
from components.edge.gateway import ingress_gateway_values
from components.graph.component import PlatformNamespaces, PlatformNamespacesArgs
from components.istio.component import IstioControlPlane, IstioControlPlaneArgs
from components.observability import tracing
from components.observability.component import Observability, ObservabilityArgs
from components.security import objects as security
from components.security.component import (
    MeshCertificateAuthority,
    MeshCertificateAuthorityArgs,
    MeshSecurity,
    MeshSecurityArgs,
)
from components.slo.component import SloRules, SloRulesArgs
from components.traffic.component import TrafficManagement, TrafficManagementArgs

cfg = config.load()
graph = cfg.graph

# 1. Cluster: VPC, DOKS, node pools, and the Kubernetes provider every in-cluster layer uses.
cluster = DoksCluster(cfg.name, DoksClusterArgs(cfg.cluster, cfg.environment))
in_cluster = pulumi.ResourceOptions(provider=cluster.provider)

# 2-3. Namespaces, mesh CA, Istio control plane, gateways, load balancer, DNS, TLS.
namespaces = PlatformNamespaces(
    "namespaces",
    PlatformNamespacesArgs(graph.namespace_names, cfg.istio.rev_labels(graph.namespace_names)),
    opts=in_cluster,
)
mesh_ca = MeshCertificateAuthority(
    "mesh-ca",
    MeshCertificateAuthorityArgs(
        stack_name=cfg.name,
        ca=cfg.security.mesh_ca,
        root_cert=secret_output(cfg.mesh_ca_root_cert),
        root_key=secret_output(cfg.mesh_ca_root_key),
        namespace=namespaces.by_name[mesh.ROOT_NAMESPACE],
    ),
    opts=in_cluster,
)
istio = IstioControlPlane(
    "istio",
    IstioControlPlaneArgs(
        istio=cfg.istio,
        mesh_config={**security.mesh_config(cfg.security), **tracing.mesh_config()},
        trace_sampling_percentage=cfg.observability.tracing.sampling_percentage,
        ingress_gateway_values=ingress_gateway_values(cfg.istio),
        namespaces=namespaces.by_name,
        istiod_depends_on=[mesh_ca.secret],
    ),
    opts=in_cluster,
)
ingress = IngressEdge(
    "ingress",
    IngressEdgeArgs(
        stack_name=cfg.name,
        region=cfg.cluster.region,
        vpc_name=cluster.vpc_name,
        ingress=cfg.ingress,
        dns_api_token=secret_output(cfg.dns_api_token),
        vpc_id=cluster.vpc.id,
        workload_tag=cluster.workload_tag_resource.name,
        project_id=cluster.project.id,
        namespaces=namespaces.by_name,
        crds_ready=istio.crds_ready,
    ),
    opts=in_cluster,
)

# 4. Security: mTLS, authorization, network policies, egress control.
mesh_security = MeshSecurity(
    "security",
    MeshSecurityArgs(graph, cfg.security, namespaces.by_name, istio.crds_ready),
    opts=in_cluster,
)

# 5-6. Observability and SLO rules.
observability = Observability(
    "observability",
    ObservabilityArgs(
        stack_name=cfg.name,
        environment=cfg.environment,
        region=cfg.cluster.region,
        observability=cfg.observability,
        pager_url=secret_output(cfg.alert_pager_url),
        ticket_url=secret_output(cfg.alert_ticket_url),
        mesh_namespaces=graph.namespace_names,
        namespaces=namespaces.by_name,
        crds_ready=istio.crds_ready,
    ),
    opts=in_cluster,
)
SloRules(
    "slo",
    SloRulesArgs(cfg.slos.objectives, cfg.environment, graph, [observability.prometheus_stack]),
    opts=in_cluster,
)

# 7. Traffic: routes from the service graph, resilience, scoped sidecars, Flagger canaries.
TrafficManagement(
    "traffic",
    TrafficManagementArgs(
        graph=graph,
        traffic=cfg.traffic,
        gateway_hosts=cfg.ingress.hosts,
        objectives=cfg.slos.objectives,
        revision_tag=cfg.istio.revision_tag,
        namespaces=namespaces.by_name,
        crds_ready=istio.crds_ready,
        injector=istio.mesh_injector,
        prometheus=[observability.prometheus_stack],
        policies_ready=[mesh_security],
    ),
    opts=in_cluster,
)

pulumi.export("environment", cfg.environment)
pulumi.export("clusterId", cluster.cluster.id)
pulumi.export("clusterEndpoint", cluster.cluster.endpoint)
pulumi.export("workloadTag", cluster.workload_tag)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("loadBalancerIp", ingress.ip)
