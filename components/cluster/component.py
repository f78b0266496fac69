"""The DOKS cluster: VPC, HA control plane, a tainted system pool for the mesh control plane, an
autoscaling workload pool, the DO project, and the Kubernetes provider every later layer uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as do
import pulumi_kubernetes as k8s

from components.base import pins
from components.base.model import ConfigError
from components.base.resources import chart
from components.cluster.addons import (
    METRICS_SERVER_NAMESPACE,
    METRICS_SERVER_RELEASE,
    metrics_server_values,
)
from components.cluster.config import ClusterConfig
from components.cluster.kubeconfig import exec_kubeconfig
from components.cluster.pools import (
    cluster_args,
    system_node_pool_args,
    vpc_name,
    workload_node_pool_args,
    workload_tag,
)
from components.cluster.versions import choose_version, ignores_version_changes


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

        # Known at plan time: the load balancer's name follows it (edge/load_balancer.py).
        self.vpc_name = vpc_name(name, cfg)
        self.vpc = do.Vpc(
            f"{name}-vpc",
            name=self.vpc_name,
            region=cfg.region,
            ip_range=cfg.vpc_cidr,
            description=f"Private network of the {name} service mesh",
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )

        # The version moves only when someone decides it (versions.py): unpinned, DOKS owns
        # the patch upgrades (in the maintenance window) and the program ignores them.
        offered = do.get_kubernetes_versions_output(
            version_prefix=cfg.kubernetes_version_prefix,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        version = pulumi.Output.all(offered.latest_version, offered.valid_versions).apply(
            lambda v: _as_run_error(
                choose_version, cfg.kubernetes_version_prefix, cfg.kubernetes_version, v[0], v[1]
            )
        )
        ignored = (
            ["version"] if ignores_version_changes(cfg.auto_upgrade, cfg.kubernetes_version) else []
        )

        self.cluster = do.KubernetesCluster(
            name,
            version=version,
            vpc_uuid=self.vpc.id,
            node_pool=do.KubernetesClusterNodePoolArgs(**system_node_pool_args(name, cfg)),
            **cluster_args(name, cfg),
            opts=pulumi.ResourceOptions(parent=self, protect=protect, ignore_changes=ignored),
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
            opts=pulumi.ResourceOptions(parent=self),
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

        self.kubeconfig = exec_credential_kubeconfig(name, self.cluster)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Identity of the cluster, not of its credentials: should the kubeconfig ever change
            # (a new CA), the provider is not replaced (which would replace every object).
            cluster_identifier=self.cluster.id,
            enable_server_side_apply=True,
            # A changed Secret is updated in place, not replaced: a mesh-CA rotation step (new
            # trusted roots in the protected `cacerts`) or a new DNS token must never need a
            # replacement, which `protect` refuses and which would drop the Secret for a moment.
            enable_secret_mutable=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster, self.workload_pool]),
        )
        # What DOKS does not ship: metrics-server, without which no HPA scales (addons.py).
        # Hook-free chart: one preview diff per object.
        self.metrics_server = chart(
            METRICS_SERVER_RELEASE,
            pins.METRICS_SERVER,
            METRICS_SERVER_NAMESPACE,
            metrics_server_values(cfg),
            pulumi.ResourceOptions(parent=self, provider=self.provider),
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


def exec_credential_kubeconfig(name: str, cluster: do.KubernetesCluster) -> pulumi.Output[str]:
    """The cluster's kubeconfig with a `doctl` exec credential (see `kubeconfig.py` for why):
    built from the endpoint and CA the cluster resource reports, so it only changes when the
    cluster does. A secret, like everything derived from `kube_configs`."""
    ca = cluster.kube_configs.apply(lambda configs: configs[0].cluster_ca_certificate)
    return pulumi.Output.secret(
        pulumi.Output.all(cluster.id, cluster.endpoint, ca).apply(
            lambda v: exec_kubeconfig(name, v[0], v[1], v[2])
        )
    )


def _as_run_error(check: Any, *args: Any) -> Any:
    """Run a check that may refuse the stack's config inside an apply, so that `pulumi up`
    reports its message (a Pulumi RunError) rather than a traceback."""
    from components.config import StackConfigError

    try:
        return check(*args)
    except ConfigError as error:
        raise StackConfigError(error.problems) from None
