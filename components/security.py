"""Zero-trust security layer: mesh-wide STRICT mTLS, default-deny authorization from the declared
service graph, NetworkPolicies, egress control and ingress rate limiting.

The builders live by sub-concern (`authorization`, `network_policy`, `egress`, `rate_limit`,
`mesh_ca`); this module owns the meshConfig fragment and `MeshSecurity`, which registers every
object as its own Pulumi resource after its namespace and, for Istio CRs, after the CRDs and
istiod (`crds_ready`) so that neither a missing kind nor the validation webhook can fail it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pulumi

from components.authorization import authorization_policies, peer_authentications
from components.egress import egress_objects, gateway_policies
from components.mesh_ca import MeshCertificateAuthority
from components.network_policy import network_policies
from components.objects import register
from components.rate_limit import local_rate_limit

if TYPE_CHECKING:
    from components.config import PlatformConfig

__all__ = ["MeshCertificateAuthority", "MeshSecurity", "mesh_config", "security_objects"]


def mesh_config(cfg: PlatformConfig) -> dict[str, Any]:
    """The meshConfig fragment this layer owns (merged into istiod's values by the Istio
    layer). Config validation already refused ALLOW_ANY outside dev."""
    return {"outboundTrafficPolicy": {"mode": cfg.security.outbound_traffic_policy}}


def security_objects(cfg: PlatformConfig) -> list[dict[str, Any]]:
    """Every object the layer authors, in registration order."""
    names = [ns.name for ns in cfg.mesh_namespaces]
    permissive = [ns.name for ns in cfg.mesh_namespaces if ns.mtls == "permissive"]
    hosts = cfg.security.external_hosts
    objects = peer_authentications(cfg.mesh_namespaces, cfg.services)
    objects += authorization_policies(names, cfg.services, permissive)
    for ns in names:
        objects += network_policies(ns, cfg.services, hosts)
    for ext in hosts:
        objects += egress_objects(ext)
    objects += gateway_policies(hosts)
    if cfg.security.ingress_rate_limit.enabled:
        objects.append(local_rate_limit(cfg.security.ingress_rate_limit))
    return objects


class Namespaces(Protocol):
    def get(self, name: str) -> pulumi.Resource: ...


def resource_name(obj: dict[str, Any]) -> str:
    """Stable Pulumi name; the type token already tells kinds apart."""
    meta = obj["metadata"]
    return f"{meta['namespace']}-{meta['name']}"


class MeshSecurity(pulumi.ComponentResource):
    """Registers `security_objects(cfg)`, one Pulumi resource per object."""

    def __init__(
        self,
        name: str,
        cfg: PlatformConfig,
        *,
        namespaces: Namespaces,
        crds_ready: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("service-mesh:security:MeshSecurity", name, None, opts)
        self.resources: list[pulumi.CustomResource] = []
        for obj in security_objects(cfg):
            namespace = namespaces.get(obj["metadata"]["namespace"])
            self.resources.append(self._register(obj, namespace, crds_ready))
        self.register_outputs({"objects": len(self.resources)})

    def _register(
        self, obj: dict[str, Any], namespace: pulumi.Resource, crds_ready: Sequence[pulumi.Resource]
    ) -> pulumi.CustomResource:
        # Istio objects also wait for the CRDs and istiod's validating webhook.
        istio = obj["apiVersion"].split("/")[0].endswith("istio.io")
        depends_on = [namespace, *crds_ready] if istio else [namespace]
        return register(
            resource_name(obj), obj, pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        )
