"""Composes the service-mesh platform for one stack. No logic here: config is validated once,
components are wired in dependency order, outputs are exported."""

import pulumi

from components import config
from components.cluster import DoksCluster
from components.ingress import IngressEdge
from components.istio import IstioControlPlane
from components.namespaces import PlatformNamespaces
from components.observability import Observability
from components.observability import mesh_config as observability_mesh_config
from components.security import MeshCertificateAuthority, MeshSecurity, mesh_config
from components.slo import SloRules

cfg = config.load()

# 1. Cluster: VPC, DOKS, node pools, and the Kubernetes provider every in-cluster layer uses.
cluster = DoksCluster(cfg.name, cfg.cluster, cfg.environment)
in_cluster = pulumi.ResourceOptions(provider=cluster.provider)

# 2-3. Namespaces, mesh CA, Istio control plane, gateways, load balancer, DNS, TLS.
namespaces = PlatformNamespaces("namespaces", cfg, opts=in_cluster)
mesh_ca = MeshCertificateAuthority(
    "mesh-ca", cfg, depends_on=[namespaces.get("istio-system")], opts=in_cluster
)
istio = IstioControlPlane(
    "istio",
    cfg,
    namespaces,
    mesh_config={**mesh_config(cfg), **observability_mesh_config(cfg)},
    istiod_depends_on=[mesh_ca.secret],
    opts=in_cluster,
)
ingress = IngressEdge(
    "ingress",
    cfg,
    vpc=cluster.vpc,
    workload_tag=cluster.workload_tag_resource,
    namespaces=namespaces,
    istio=istio,
    project_id=cluster.project.id,
    opts=in_cluster,
)

# 4. Security: mTLS, authorization, network policies, egress control.
security = MeshSecurity(
    "security", cfg, namespaces=namespaces, crds_ready=istio.crds_ready, opts=in_cluster
)

# 5-6. Observability and SLO rules.
observability = Observability(
    "observability", cfg, namespaces=namespaces, crds_ready=istio.crds_ready, opts=in_cluster
)
slo_rules = SloRules(
    "slo",
    cfg.slos.objectives,
    cfg.environment,
    opts=in_cluster,
    depends_on=[observability.prometheus_stack],
)

pulumi.export("environment", cfg.environment)
pulumi.export("clusterId", cluster.cluster.id)
pulumi.export("clusterEndpoint", cluster.cluster.endpoint)
pulumi.export("workloadTag", cluster.workload_tag)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("loadBalancerIp", ingress.ip)
