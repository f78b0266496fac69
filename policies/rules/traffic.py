"""Traffic objects (networking.istio.io VirtualService, DestinationRule; flagger.app Canary),
written against the API shapes so they hold whoever authors the objects:

- no `circuitBreaker` (not an Istio field: silently ignored) and no deprecated
  `outlierDetection.consecutiveErrors`;
- in production (`traffic-outlier-detection`, `traffic-no-faults` enabled by the stack's policy
  config), every host an HTTP route sends to ejects failing endpoints, and no fault injection
  unless the host is allowed;
- every subset a route names is defined in the host's one DestinationRule (a second DR for the
  same host is silently dropped, and a route to a missing subset is a 503);
- a host a Flagger Canary owns has no VirtualService, DestinationRule or Service of ours
  (Flagger rewrites them), and its target Deployment leaves `replicas` to Flagger;
- TLS to mesh services is ISTIO_MUTUAL: a Canary says so explicitly (Flagger's examples use
  DISABLE, which breaks under STRICT mTLS) and no DestinationRule downgrades it.

Hosts are compared as Istio resolves them: short names in the object's namespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.rules.base import (
    RESOURCE,
    STACK,
    Rule,
    dig,
    dotted,
    excepted,
    exceptions_schema,
    fqdn,
    host_namespace,
    in_cluster,
    is_kind,
    is_list,
    is_mapping,
    items,
    message,
    meta,
    namespace,
    number,
    obj_name,
    of_kind,
    walk,
    where,
)
from policies.rules.isolation import PLATFORM_NAMESPACES

NETWORKING, FLAGGER = "networking.istio.io", "flagger.app"


@dataclass(frozen=True)
class Destination:
    section: str  # http, tcp, tls
    host: str  # FQDN
    subset: str | None
    label: str  # where in the VirtualService, for messages


def destinations(vs: Any) -> list[Destination]:
    """Every destination a VirtualService routes or mirrors to."""
    ns = namespace(vs)
    out: list[Destination] = []
    for section in ("http", "tcp", "tls"):
        for i, route in enumerate(items(dig(vs.props, "spec", section))):
            targets = [
                (f"{section}[{i}].route[{j}]", dig(d, "destination"))
                for j, d in enumerate(items(dig(route, "route")))
            ]
            if section == "http":
                targets.append((f"http[{i}].mirror", dig(route, "mirror")))
                targets += [
                    (f"http[{i}].mirrors[{j}]", dig(m, "destination"))
                    for j, m in enumerate(items(dig(route, "mirrors")))
                ]
            for label, dest in targets:
                if is_mapping(dest) and dig(dest, "host"):
                    subset = dig(dest, "subset")
                    out.append(
                        Destination(
                            section, fqdn(str(dig(dest, "host")), ns), subset and str(subset), label
                        )
                    )
    return out


def dr_host(dr: Any) -> str:
    return fqdn(str(dig(dr.props, "spec", "host", default="")), namespace(dr))


def canary_service(canary: Any) -> tuple[str, str]:
    """(namespace, service name) a Canary owns: `spec.service.name`, else the target's name."""
    name = dig(canary.props, "spec", "service", "name") or dig(
        canary.props, "spec", "targetRef", "name", default=""
    )
    return namespace(canary), str(name)


# --- deprecated and invalid fields -----------------------------------------------------------


def check_deprecated(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if is_kind(resource, NETWORKING, "DestinationRule"):
        root = dig(resource.props, "spec", default={})
    elif is_kind(resource, FLAGGER, "Canary"):
        root = dig(resource.props, "spec", "service", "trafficPolicy", default={})
    else:
        return
    if excepted(config, f"{namespace(resource)}/{obj_name(resource)}"):
        return
    for path, _ in walk(root):
        if path[-1] == "circuitBreaker":
            yield message(
                f"{where(resource)} sets {dotted(path)}",
                "Istio has no circuitBreaker field (it is from an old blog post); the intent is "
                "silently dropped or the object refused, and no circuit is broken.",
                "use trafficPolicy.connectionPool (limits) and trafficPolicy.outlierDetection "
                "(ejection) instead",
            )
        elif path[-1] == "consecutiveErrors" and len(path) > 1 and path[-2] == "outlierDetection":
            yield message(
                f"{where(resource)} sets {dotted(path)}, deprecated",
                "consecutiveErrors is deprecated and counts 502/503/504 only; it is ignored "
                "beside consecutive5xxErrors.",
                "use outlierDetection.consecutive5xxErrors (or consecutiveGatewayErrors)",
            )


# --- outlier detection on routed hosts -------------------------------------------------------


def _ejects(policy: Any) -> bool:
    detection = dig(policy, "outlierDetection")
    if not is_mapping(detection):
        return False
    five = number(dig(detection, "consecutive5xxErrors"))
    gateway = number(dig(detection, "consecutiveGatewayErrors")) or 0
    return five is None or five > 0 or gateway > 0  # consecutive5xxErrors defaults to 5


def _dr_ejects(dr: Any) -> bool:
    if _ejects(dig(dr.props, "spec", "trafficPolicy")):
        return True
    subsets = items(dig(dr.props, "spec", "subsets"))
    return bool(subsets) and all(_ejects(dig(s, "trafficPolicy")) for s in subsets)


def check_outlier_detection(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    platform = set(config.get("platformNamespaces") or PLATFORM_NAMESPACES)
    drs = of_kind(resources, NETWORKING, "DestinationRule")
    why = (
        "without outlier detection a crashing or overloaded pod keeps its share of traffic "
        "and every retry may land on it again."
    )
    seen: set[str] = set()
    for vs in of_kind(resources, NETWORKING, "VirtualService"):
        for d in destinations(vs):
            if d.section != "http" or not in_cluster(d.host) or d.host in seen:
                continue
            if host_namespace(d.host) in platform or excepted(config, d.host):
                continue
            seen.add(d.host)
            if not any(dr_host(dr) == d.host and _dr_ejects(dr) for dr in drs):
                yield (
                    vs.urn,
                    message(
                        f"{where(vs)} routes HTTP to {d.host}, whose DestinationRule has no "
                        "outlierDetection",
                        why,
                        "set trafficPolicy.outlierDetection (consecutive5xxErrors, interval, "
                        "baseEjectionTime) in the host's DestinationRule",
                    ),
                )
    for canary in of_kind(resources, FLAGGER, "Canary"):
        ns, svc = canary_service(canary)
        host = fqdn(svc, ns)
        if ns in platform or excepted(config, host):
            continue
        if not _ejects(dig(canary.props, "spec", "service", "trafficPolicy")):
            yield (
                canary.urn,
                message(
                    f"{where(canary)} sets no service.trafficPolicy.outlierDetection",
                    why,
                    "set spec.service.trafficPolicy.outlierDetection: Flagger copies it into the "
                    "DestinationRules it generates",
                ),
            )


# --- fault injection -------------------------------------------------------------------------


def check_faults(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if not is_kind(resource, NETWORKING, "VirtualService"):
        return
    ns = namespace(resource)
    hosts = {fqdn(str(h), ns) for h in items(dig(resource.props, "spec", "hosts"))}
    if excepted(config, f"{ns}/{obj_name(resource)}", *hosts):
        return
    for i, route in enumerate(items(dig(resource.props, "spec", "http"))):
        if dig(route, "fault"):
            yield message(
                f"{where(resource)} http[{i}] injects faults",
                "injected delays and aborts reach real users; retries and timeouts are also "
                "disabled on a route with a fault.",
                "remove the fault, or allow the host for chaos testing: "
                '"traffic-no-faults": {"exceptions": {"<host>": "<why, until when>"}}',
            )


# --- subsets and one DestinationRule per host ------------------------------------------------


def check_subsets(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    by_host: dict[str, list[Any]] = {}
    for dr in of_kind(resources, NETWORKING, "DestinationRule"):
        by_host.setdefault(dr_host(dr), []).append(dr)
    for host, found in by_host.items():
        if len(found) > 1 and not excepted(config, host):
            names = ", ".join(f"{namespace(d)}/{obj_name(d)}" for d in found)
            for dr in found[1:]:
                yield (
                    dr.urn,
                    message(
                        f"host {host} has {len(found)} DestinationRules ({names})",
                        "Istio merges them unpredictably: only the first trafficPolicy is kept, "
                        "duplicate subsets are dropped silently.",
                        "keep one DestinationRule per host, in the service's namespace",
                    ),
                )
    for vs in of_kind(resources, NETWORKING, "VirtualService"):
        for d in destinations(vs):
            if d.subset is None or excepted(config, d.host):
                continue
            rules = by_host.get(d.host, [])
            defined = {
                str(dig(s, "name"))
                for dr in rules[:1]
                for s in items(dig(dr.props, "spec", "subsets"))
            }
            if d.subset not in defined:
                yield (
                    vs.urn,
                    message(
                        f"{where(vs)} {d.label} routes to subset {d.subset} of {d.host}, which "
                        + (
                            "no DestinationRule exists for"
                            if not rules
                            else "its DestinationRule does not define"
                        ),
                        "a route to an undefined subset has no endpoints: every request gets 503 "
                        "(NR) until the subset exists.",
                        "define the subset (name and labels) in the host's DestinationRule, "
                        "applied before the route (make-before-break)",
                    ),
                )


# --- Flagger owns the routing of a canaried host ---------------------------------------------

# pulumi-kubernetes' field managers: `pulumi-kubernetes-<random>` (server-side apply),
# `pulumi-kubernetes` (client-side apply), or the object's `pulumi.com/patchFieldManager`.
PULUMI_MANAGER = "pulumi-kubernetes"
FIELD_MANAGER_ANNOTATION = "pulumi.com/patchFieldManager"


def sets_replicas(deployment: Any) -> bool:
    """Whether the program sets the Deployment's `spec.replicas`. A stack policy gets outputs:
    the object as the API server returns it (or a server-side dry run previews it), with
    `replicas` defaulted to 1 whoever set it, so there only Pulumi's field manager owning
    `spec.replicas` in `metadata.managedFields` says the program set it. Props without
    managedFields are the program's inputs (the offline plan, or a preview the provider could
    not dry-run), and there `spec.replicas` is what the program wrote."""
    managed = meta(deployment, "managedFields")
    if not is_list(managed):
        return dig(deployment.props, "spec", "replicas") is not None
    own = dig(meta(deployment, "annotations", default={}), FIELD_MANAGER_ANNOTATION)
    for entry in items(managed):
        manager = str(dig(entry, "manager", default=""))
        ours = manager == own if own else manager.split("-")[:2] == PULUMI_MANAGER.split("-")
        if ours and dig(entry, "fieldsV1", "f:spec", "f:replicas") is not None:
            return True
    return False


def check_canary_ownership(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    why = (
        "Flagger generates and rewrites the VirtualService, DestinationRules and Services of "
        "a canaried host; ours would fight it on every `pulumi up` and a rollout would be "
        "undone or stuck."
    )
    for canary in of_kind(resources, FLAGGER, "Canary"):
        ns, svc = canary_service(canary)
        if not svc or excepted(config, f"{ns}/{svc}"):
            continue
        owned_names = {svc, f"{svc}-primary", f"{svc}-canary"}
        owned = {fqdn(n, ns) for n in owned_names}
        public = {str(h).lower() for h in items(dig(canary.props, "spec", "service", "hosts"))}
        for vs in of_kind(resources, NETWORKING, "VirtualService"):
            hosts = {fqdn(str(h), namespace(vs)) for h in items(dig(vs.props, "spec", "hosts"))}
            if hosts & (owned | public):
                yield (
                    vs.urn,
                    message(
                        f"{where(vs)} routes {', '.join(sorted(hosts & (owned | public)))}, owned "
                        f"by Canary {ns}/{obj_name(canary)}",
                        why,
                        "remove the VirtualService; put gateways, hosts, match and retries in the "
                        "Canary's spec.service",
                    ),
                )
        for dr in of_kind(resources, NETWORKING, "DestinationRule"):
            if dr_host(dr) in owned:
                yield (
                    dr.urn,
                    message(
                        f"{where(dr)} is for {dr_host(dr)}, owned by Canary "
                        f"{ns}/{obj_name(canary)}",
                        why,
                        "remove it; set spec.service.trafficPolicy in the Canary instead",
                    ),
                )
        for service in of_kind(resources, "core", "Service"):
            if namespace(service) == ns and obj_name(service) in owned_names:
                yield (
                    service.urn,
                    message(
                        f"{where(service)} is generated by Flagger for Canary "
                        f"{ns}/{obj_name(canary)}",
                        why,
                        "remove the Service; Flagger creates it from spec.service.port",
                    ),
                )
        target = str(dig(canary.props, "spec", "targetRef", "name", default=""))
        for deployment in of_kind(resources, "apps", "Deployment"):
            same = namespace(deployment) == ns and obj_name(deployment) == target
            if same and sets_replicas(deployment):
                yield (
                    deployment.urn,
                    message(
                        f"{where(deployment)} is the target of Canary {ns}/{obj_name(canary)} and "
                        "sets spec.replicas",
                        "Flagger scales the target to zero after a promotion; a replica count in "
                        "the program scales it back up (and server-side apply conflicts) on every "
                        "`pulumi up`.",
                        "omit spec.replicas and size the workload with a HorizontalPodAutoscaler "
                        "(the Canary's autoscalerRef)",
                    ),
                )


# --- ISTIO_MUTUAL ----------------------------------------------------------------------------


def _tls_modes(policy: Any, path: str) -> Iterator[tuple[str, str]]:
    mode = dig(policy, "tls", "mode")
    if mode is not None:
        yield f"{path}.tls.mode", str(mode)
    for i, port in enumerate(items(dig(policy, "portLevelSettings"))):
        mode = dig(port, "tls", "mode")
        if mode is not None:
            yield f"{path}.portLevelSettings[{i}].tls.mode", str(mode)


def check_istio_mutual(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if excepted(config, f"{namespace(resource)}/{obj_name(resource)}"):
        return
    if is_kind(resource, FLAGGER, "Canary"):
        mode = dig(resource.props, "spec", "service", "trafficPolicy", "tls", "mode")
        if mode != "ISTIO_MUTUAL":
            yield message(
                f"{where(resource)} sets service.trafficPolicy.tls.mode "
                f"{mode or '(none)'}, not ISTIO_MUTUAL",
                "the mesh is STRICT: Flagger's DestinationRules must keep Istio mutual TLS, "
                "and its examples' DISABLE makes every request to the canaried service fail.",
                "set spec.service.trafficPolicy.tls.mode: ISTIO_MUTUAL",
            )
    elif is_kind(resource, NETWORKING, "DestinationRule") and in_cluster(dr_host(resource)):
        spec = dig(resource.props, "spec", default={})
        found = list(_tls_modes(dig(spec, "trafficPolicy", default={}), "trafficPolicy"))
        for i, subset in enumerate(items(dig(spec, "subsets"))):
            found += _tls_modes(
                dig(subset, "trafficPolicy", default={}), f"subsets[{i}].trafficPolicy"
            )
        for path, mode in found:
            if mode != "ISTIO_MUTUAL":
                yield message(
                    f"{where(resource)} sets {path} {mode} for the mesh host {dr_host(resource)}",
                    "under STRICT mTLS the server refuses anything but Istio mutual TLS, so "
                    "this downgrade breaks every request (and DISABLE would send plaintext).",
                    "set ISTIO_MUTUAL, or drop the tls block (auto mTLS)",
                )


_BY_NAME = "namespace/name of the object"
RULES = [
    Rule(
        name="traffic-no-deprecated-fields",
        description="DestinationRules and Canaries use no `circuitBreaker` and no "
        "`outlierDetection.consecutiveErrors`.",
        kind=RESOURCE,
        check=check_deprecated,
        remediation="Use connectionPool and outlierDetection.consecutive5xxErrors.",
        config={"exceptions": exceptions_schema(_BY_NAME)},
        severity="medium",
        exception_key=_BY_NAME,
    ),
    Rule(
        name="traffic-outlier-detection",
        description="Every mesh host an HTTP route sends to has outlier detection.",
        kind=STACK,
        check=check_outlier_detection,
        remediation="Set outlierDetection in the host's DestinationRule (or Canary).",
        config={
            "platformNamespaces": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Namespaces whose hosts (gateways) are not application services.",
                "default": PLATFORM_NAMESPACES,
            },
            "exceptions": exceptions_schema("host FQDN"),
        },
        severity="medium",
        exception_key="host FQDN",
    ),
    Rule(
        name="traffic-no-faults",
        description="No VirtualService injects faults unless its host is allowed.",
        kind=RESOURCE,
        check=check_faults,
        remediation="Remove `fault`, or grant the host an exception for chaos testing.",
        config={"exceptions": exceptions_schema("host FQDN, or namespace/VirtualService name")},
        severity="high",
        exception_key="host FQDN, or namespace/VirtualService name",
    ),
    Rule(
        name="traffic-subsets-defined",
        description="Every routed subset is defined in the host's single DestinationRule.",
        kind=STACK,
        check=check_subsets,
        remediation="Keep one DestinationRule per host and define every subset routes name.",
        config={"exceptions": exceptions_schema("host FQDN")},
        severity="high",
        exception_key="host FQDN",
    ),
    Rule(
        name="traffic-canary-owns-routing",
        description="A host a Flagger Canary owns has no VirtualService, DestinationRule or "
        "Service of ours, and its target sets no replicas.",
        kind=STACK,
        check=check_canary_ownership,
        remediation="Route a canaried service only through its Canary's spec.service.",
        config={"exceptions": exceptions_schema("namespace/service of the Canary")},
        severity="high",
        exception_key="namespace/service of the Canary",
    ),
    Rule(
        name="traffic-istio-mutual",
        description="Canaries set tls.mode ISTIO_MUTUAL; DestinationRules never downgrade TLS "
        "to mesh hosts.",
        kind=RESOURCE,
        check=check_istio_mutual,
        remediation="Set trafficPolicy.tls.mode: ISTIO_MUTUAL.",
        config={"exceptions": exceptions_schema(_BY_NAME)},
        severity="high",
        exception_key=_BY_NAME,
    ),
]
