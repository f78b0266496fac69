"""The DOKS cluster: VPC, HA control plane, a tainted system pool for the mesh control plane, an
autoscaling workload pool, the DO project, and the Kubernetes provider every later layer uses."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do
import pulumi_kubernetes as k8s

from components.cluster.config import ClusterConfig
from components.cluster.pools import (
    cluster_args,
    system_node_pool_args,
    workload_node_pool_args,
    workload_tag,
)


@dataclass(frozen=True)
class DoksClusterArgs:
    cluster: ClusterConfig
    environment: str  # named in the DO project's description


class DoksCluster(pulumi.ComponentResource):
    """VPC + DOKS + pools + Kubernetes provider. `provider` is what in-cluster layers use."""

    def __init__(
        self, name: str, args: DoksClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("service-mesh:cluster:DoksCluster", name, None, opts)
        cfg = args.cluster
        protect = cfg.protect
        child = pulumi.ResourceOptions(parent=self)

        self.vpc = do.Vpc(
            f"{name}-vpc",
            name=f"{name}-vpc",
            region=cfg.region,
            ip_range=cfg.vpc_cidr,
            description=f"Private network of the {name} service mesh",
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )

        # The version comes from a data source so a DOKS patch upgrade is not a diff; only a
        # change of the configured minor prefix moves the cluster.
        version = do.get_kubernetes_versions_output(
            version_prefix=cfg.kubernetes_version_prefix,
            opts=pulumi.InvokeOutputOptions(parent=self),
        ).latest_version

        self.cluster = do.KubernetesCluster(
            name,
            version=version,
            vpc_uuid=self.vpc.id,
            node_pool=do.KubernetesClusterNodePoolArgs(**system_node_pool_args(name, cfg)),
            **cluster_args(name, cfg),
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )

        # The droplet tag the load balancer targets, owned as its own resource: created before
        # the pool names it (no race with the pool creating it implicitly), and kept when the
        # cluster is rebuilt, like the load balancer that points at it.
        self.workload_tag_resource = do.Tag(
            f"{name}-workload-tag",
            name=workload_tag(name),
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        pool_args = workload_node_pool_args(name, cfg)
        pool_args["tags"] = [self.workload_tag_resource.name]
        self.workload_pool = do.KubernetesNodePool(
            f"{name}-workload",
            cluster_id=self.cluster.id,
            **pool_args,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["nodeCount"]),
        )

        # Membership has one owner per resource: `ProjectResources` (here the cluster's; the
        # way in lists its load balancer and zone the same way). The Project itself lists
        # nothing: its `resources` would read back every member on refresh, and the next `up`
        # would move the others to the account's default project.
        self.project = do.Project(
            f"{name}-project",
            name=name,
            environment=cfg.project_environment,
            purpose="Service or API",
            description=f"Istio service mesh platform ({args.environment})",
            opts=child,
        )
        do.ProjectResources(
            f"{name}-project-cluster",
            project=self.project.id,
            resources=[self.cluster.cluster_urn],
            opts=child,
        )

        self.kubeconfig = fresh_kubeconfig(self, self.cluster)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Identity of the cluster, not of its credentials: a renewed token must not replace
            # the provider (which would replace every in-cluster object).
            cluster_identifier=self.cluster.id,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster, self.workload_pool]),
        )
        self.workload_tag = workload_tag(name)
        self.register_outputs(
            {
                "clusterId": self.cluster.id,
                "endpoint": self.cluster.endpoint,
                "vpcId": self.vpc.id,
                "workloadTag": self.workload_tag,
                "kubeconfig": self.kubeconfig,
            }
        )


def fresh_kubeconfig(parent: pulumi.Resource, cluster: do.KubernetesCluster) -> pulumi.Output[str]:
    """A kubeconfig fetched anew on every `pulumi up`/`preview`.

    DOKS tokens expire after 7 days, so the one stored in state at creation time goes stale.
    Reading the cluster through the data source on each run returns fresh credentials. Keyed on
    the cluster id, which is unknown until the cluster exists, so a first preview does not look
    up a cluster that is not there yet."""
    lookup_name = pulumi.Output.all(cluster.id, cluster.name).apply(lambda v: v[1])
    current = do.get_kubernetes_cluster_output(
        name=lookup_name, opts=pulumi.InvokeOutputOptions(parent=parent, depends_on=[cluster])
    )
    return pulumi.Output.secret(current.kube_configs.apply(lambda cfgs: cfgs[0].raw_config))
