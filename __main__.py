"""Composes the service-mesh platform for one stack. No logic here: config is validated once,
components are wired in dependency order, outputs are exported."""

import pulumi

from components import config
from components.cluster import DoksCluster

cfg = config.load()

# 1. Cluster: VPC, DOKS, node pools, and the Kubernetes provider every in-cluster layer uses.
cluster = DoksCluster(cfg.name, cfg.cluster, cfg.environment)
in_cluster = pulumi.ResourceOptions(provider=cluster.provider)

# 2-3. Namespaces, mesh CA, Istio control plane, gateways, load balancer, DNS, TLS.

# 4. Security: mTLS, authorization, network policies, egress control.

# 5-6. Observability and SLO rules.

pulumi.export("environment", cfg.environment)
pulumi.export("clusterId", cluster.cluster.id)
pulumi.export("clusterEndpoint", cluster.cluster.endpoint)
pulumi.export("workloadTag", cluster.workload_tag)
pulumi.export("kubeconfig", cluster.kubeconfig)
