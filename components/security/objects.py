"""Every object the zero-trust layer authors, in registration order, and the meshConfig fragment
it owns. The builders live by sub-concern (`authorization`, `network_policy`, `egress`; the
ingress rate limit is the way in's, `components/edge/rate_limit.py`, registered here with the
other policies it was first shipped with). Pure: no Pulumi.
"""

from __future__ import annotations

from typing import Any

from components.edge.rate_limit import local_rate_limit
from components.graph.checks import ServiceGraph
from components.security.authorization import authorization_policies, peer_authentications
from components.security.config import SecurityConfig
from components.security.egress import egress_objects, gateway_callers, gateway_policies
from components.security.network_policy import network_policies


def mesh_config(security: SecurityConfig) -> dict[str, Any]:
    """The meshConfig fragment this layer owns (merged into istiod's values by the Istio
    layer). Config validation already refused ALLOW_ANY where the tier forbids it."""
    return {"outboundTrafficPolicy": {"mode": security.outbound_traffic_policy}}


def security_objects(graph: ServiceGraph, security: SecurityConfig) -> list[dict[str, Any]]:
    """Every object the layer authors, in registration order."""
    hosts = graph.external_hosts
    objects = peer_authentications(graph.namespaces, graph.services)
    objects += authorization_policies(graph)
    for ns in graph.namespace_names:
        objects += network_policies(ns, graph.services, hosts)
    callers = gateway_callers(hosts)
    for ext in hosts:
        objects += egress_objects(ext, callers)
    objects += gateway_policies(hosts)
    if security.ingress_rate_limit.enabled:
        objects.append(local_rate_limit(security.ingress_rate_limit))
    return objects
