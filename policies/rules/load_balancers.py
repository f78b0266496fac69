"""One way in: no Kubernetes Service of type LoadBalancer except the ingress gateway's (on
DOKS each one makes the cloud controller create a billed DigitalOcean load balancer with its
own public IP, outside Pulumi's state), and no more Pulumi-owned DigitalOcean load balancers
than the stack allows.

The Istio gateway chart defaults to `service.type: LoadBalancer`, so a gateway release that
does not set a type counts; so does any chart value `type: LoadBalancer` under a service key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components.base import mesh
from policies.rules.base import (
    CORE,
    STACK,
    Rule,
    dig,
    dotted,
    excepted,
    exceptions_schema,
    is_mapping,
    message,
    namespace,
    number,
    obj_name,
    of_kind,
    walk,
    where,
)
from policies.rules.helm import charts

DO_LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"
LB = "LoadBalancer"
WHY = (
    "every LoadBalancer Service is a separate billed DigitalOcean load balancer with its own "
    "public IP, created by the cloud controller outside Pulumi's state and outside the "
    "firewall and DNS the platform manages."
)
_SERVICE_TYPE_KEY = re.compile(r"^service_?type$", re.IGNORECASE)


def _ingress(ns: str, name: str) -> bool:
    return ns == mesh.INGRESS_NAMESPACE and name == mesh.INGRESS_GATEWAY


def _chart_lb_paths(values: Any) -> Iterator[str]:
    for path, value in walk(values):
        if value != LB or not path:
            continue
        key = path[-1]
        under_service = key == "type" and any("service" in p.lower() for p in path[:-1])
        if under_service or _SERVICE_TYPE_KEY.match(key):
            yield dotted(path)


def check(resources: Sequence[Any], config: Mapping[str, Any]) -> Iterator[tuple[str | None, str]]:
    fix = (
        "use type ClusterIP (NodePort only for the ingress gateway behind the Pulumi load "
        'balancer); for a gateway canary set service.type: "None"'
    )
    for service in of_kind(resources, CORE, "Service"):
        ns, name = namespace(service), obj_name(service)
        if dig(service.props, "spec", "type") == LB and not (
            _ingress(ns, name) or excepted(config, f"{ns}/{name}")
        ):
            yield service.urn, message(f"{where(service)} is of type LoadBalancer", WHY, fix)
    for c in charts(resources):
        if excepted(config, f"{c.namespace}/{c.release}"):
            continue
        if c.chart == "gateway":
            service = dig(c.values, "service", default={})
            kind = str(dig(service, "type", default=LB)) if is_mapping(service) else LB
            if kind == LB and not _ingress(c.namespace, c.release):
                yield (
                    c.resource.urn,
                    message(
                        f"{c.where()} renders a LoadBalancer Service (service.type "
                        f"{'unset: the chart default' if 'type' not in service else kind})",
                        WHY,
                        fix,
                    ),
                )
            continue
        for path in _chart_lb_paths(c.values):
            yield (
                c.resource.urn,
                message(f"{c.where()} sets values.{path} to LoadBalancer", WHY, fix),
            )
    allowed = number(config.get("maxDigitalOceanLoadBalancers"))
    allowed = 1 if allowed is None else int(allowed)
    balancers = [r for r in resources if r.resource_type == DO_LOAD_BALANCER]
    if len(balancers) > allowed:
        for extra in balancers[allowed:]:
            yield (
                extra.urn,
                message(
                    f"{len(balancers)} DigitalOcean load balancers, {allowed} allowed "
                    f"({extra.name} is one too many)",
                    "the platform has one way in (the ingress gateway behind one load balancer); "
                    "each more is billed and needs its own firewall, DNS and TLS.",
                    "route new hosts through the public Gateway (`ingress.hosts`)",
                ),
            )


RULES = [
    Rule(
        name="single-load-balancer",
        description="No LoadBalancer Service other than the ingress gateway's, and no more "
        "DigitalOcean load balancers than allowed.",
        kind=STACK,
        check=check,
        remediation="Expose services through the public Gateway, not their own load balancer.",
        config={
            "maxDigitalOceanLoadBalancers": {
                "type": "integer",
                "minimum": 0,
                "description": "DigitalOcean load balancers the stack may own.",
                "default": 1,
            },
            "exceptions": exceptions_schema("namespace/Service or namespace/Helm release"),
        },
        severity="medium",
        exception_key="namespace/Service or namespace/Helm release name",
    )
]
