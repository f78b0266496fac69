"""Composes the service-mesh platform for one stack. No logic here: config is validated once,
components are wired in dependency order, outputs are exported."""

import pulumi

from components import config
from components.cluster import DoksCluster

cfg = config.load()

cluster = DoksCluster(cfg.name, cfg.cluster, cfg.environment)

pulumi.export("environment", cfg.environment)
pulumi.export("clusterId", cluster.cluster.id)
pulumi.export("clusterEndpoint", cluster.cluster.endpoint)
pulumi.export("workloadTag", cluster.workload_tag)
pulumi.export("kubeconfig", cluster.kubeconfig)
