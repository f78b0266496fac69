"""`tools.recover plan`: what a lost cluster or region takes with it, what a rebuild retains,
updates and recreates, in dependency order, with an estimated recovery time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tools.recovery.runbook import commands
from tools.recovery.state import (
    CLUSTER_TYPES,
    HELM_RELEASE,
    K8S_PROVIDER,
    PROJECT_RESOURCES,
    REGIONAL_TYPES,
    SPACES_BUCKET,
    cluster_of,
    declared,
    is_provider,
    ref_urn,
    tracked,
)

# Typical minutes to create one resource of a type, for the recovery-time estimate: DOKS says a
# cluster is ready in "several minutes" (we use 7, plus 4 for a node pool); a load balancer
# "a few minutes" (3); Helm releases wait for readiness, bounded by our 900 s timeout (we use 4
# for Istio and kube-prometheus-stack, 2 otherwise); Kubernetes objects and DO metadata are
# seconds. Estimates, not measurements: the real figure is what a drill on a real account shows.
CREATE_MINUTES: dict[str, float] = {
    "digitalocean:index/kubernetesCluster:KubernetesCluster": 7,
    "digitalocean:index/kubernetesNodePool:KubernetesNodePool": 4,
    "digitalocean:index/loadBalancer:LoadBalancer": 3,
    "digitalocean:index/vpc:Vpc": 0.5,
    "digitalocean:index/spacesBucket:SpacesBucket": 0.5,
    "kubernetes:helm.sh/v3:Release": 4,
    "kubernetes:helm.sh/v4:Chart": 2,
}
DEFAULT_CREATE_MINUTES = 0.1

# --- recovery plan --------------------------------------------------------------------------


@dataclass
class RecoveryPlan:
    stack: str
    lost: str
    retained: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)  # in dependency order
    updated: list[str] = field(default_factory=list)
    only_in_state: list[str] = field(default_factory=list)
    helm_releases: list[str] = field(default_factory=list)  # `state delete`, dependents first
    unprotect: list[str] = field(default_factory=list)  # protected, replaced in a new region
    reconcile: list[str] = field(default_factory=list)  # may exist although not in the export
    minutes: float = 0.0
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lost_urns(resources: list[dict[str, Any]], lost: str) -> set[str]:
    """What a refresh after the loss drops from state: the cluster, its pools and every object
    on its Kubernetes provider; for a region (the cluster's), also the regional resources
    there. Never a provider: a refresh reads no provider resource and drops none (pulumi
    pkg/resource/deploy/deployment_executor.go refresh: "expected non-provider resource"), so
    the Kubernetes provider stays in state and is updated with the new cluster's kubeconfig."""
    region = ((cluster_of(resources) or {}).get("inputs") or {}).get("region")
    out = {r["urn"] for r in resources if r.get("type") in CLUSTER_TYPES}
    providers = {r["urn"] for r in resources if r.get("type") == K8S_PROVIDER}
    for r in resources:
        provider = str(r.get("provider") or "")
        if provider and ref_urn(provider) in providers:
            out.add(r["urn"])
    if lost == "region":
        for r in resources:
            kind = r.get("type")
            bucket_region = (r.get("inputs") or {}).get("region")
            if kind in REGIONAL_TYPES or (kind == SPACES_BUCKET and bucket_region == region):
                out.add(r["urn"])
    for r in resources:
        if r.get("type") == PROJECT_RESOURCES and set(r.get("dependencies") or []) & out:
            out.add(r["urn"])
    return out


def _program_deps(program: Any) -> dict[str, list[str]]:
    """Per declared resource, what it waits for: its dependencies and its provider, a provider
    standing for what it waits for itself (the Kubernetes provider for the cluster), since
    providers are not part of the plan."""
    by_urn = {r.urn: r for r in program.resources}

    def own(r: Any) -> list[str]:
        return [*r.dependencies, *([ref_urn(r.provider)] if r.provider else [])]

    def expand(urns: list[str], seen: set[str]) -> list[str]:
        out: list[str] = []
        for urn in urns:
            found = by_urn.get(urn)
            if found is not None and is_provider(found.type):
                if urn not in seen:
                    seen.add(urn)
                    out += expand(own(found), seen)
            else:
                out.append(urn)
        return out

    return {urn: sorted(set(expand(own(r), set()))) for urn, r in declared(program).items()}


def _order(urns: set[str], deps: dict[str, list[str]]) -> list[str]:
    """Dependency order (a dependency before what depends on it), stable by URN."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(urn: str) -> None:
        if urn in seen:
            return
        seen.add(urn)
        for d in sorted(deps.get(urn, [])):
            if d in urns:
                visit(d)
        done.append(urn)

    for urn in sorted(urns):
        visit(urn)
    return done


def _critical_minutes(urns: list[str], deps: dict[str, list[str]], kinds: dict[str, str]) -> float:
    finish: dict[str, float] = {}
    for urn in urns:  # in dependency order
        start = max((finish[d] for d in deps.get(urn, []) if d in finish), default=0.0)
        finish[urn] = start + CREATE_MINUTES.get(kinds[urn], DEFAULT_CREATE_MINUTES)
    return max(finish.values(), default=0.0)


def state_dependents(resources: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per URN, every resource of the export that depends on it, directly or not, by the
    edges `pulumi state delete` follows (pulumi pkg/resource/graph/dependency_graph.go
    OnlyDependsOn: dependencies, property dependencies, deletedWith, parent and provider)."""
    direct: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        refs = set(r.get("dependencies") or [])
        for urns in (r.get("propertyDependencies") or {}).values():
            refs |= set(urns or [])
        for key in ("deletedWith", "parent"):
            if isinstance(r.get(key), str) and r[key]:
                refs.add(r[key])
        if isinstance(r.get("provider"), str) and r["provider"]:
            refs.add(ref_urn(r["provider"]))
        for ref in refs:
            direct[ref].add(r["urn"])
    closure: dict[str, set[str]] = {}
    for r in resources:
        seen: set[str] = set()
        todo = list(direct.get(r["urn"], ()))
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += direct.get(urn, ())
        closure[r["urn"]] = seen
    return closure


def _dependents_first(urns: list[str], dependents: dict[str, set[str]]) -> list[str]:
    """`urns` ordered so that one comes before every one it depends on."""
    done: list[str] = []
    wanted = set(urns)

    def visit(urn: str) -> None:
        if urn in done:
            return
        for other in sorted(dependents.get(urn, set()) & wanted):
            visit(other)
        done.append(urn)

    for urn in sorted(urns):
        visit(urn)
    return done


def recovery_plan(
    doc: dict[str, Any], stack: str, program: Any, lost: str, region: str | None = None
) -> RecoveryPlan:
    everything = doc["deployment"]["resources"]
    resources = tracked(everything)
    by_urn = {r["urn"]: r for r in everything}
    gone = lost_urns(everything, lost)
    recorded = {r["urn"] for r in resources}
    after = recorded - gone
    program_resources = declared(program)
    deps = _program_deps(program)
    kinds = {urn: r.type for urn, r in program_resources.items()}
    plan = RecoveryPlan(stack=stack, lost=lost)
    plan.retained = sorted(after & set(program_resources))
    plan.recreated = _order(set(program_resources) - after, deps)
    plan.only_in_state = sorted(after - set(program_resources))
    recreated = set(plan.recreated)
    plan.updated = sorted(u for u in plan.retained if set(deps.get(u, [])) & recreated)
    dependents = state_dependents(everything)
    plan.helm_releases = _dependents_first(
        [r["urn"] for r in resources if r["urn"] in gone and r.get("type") == HELM_RELEASE],
        dependents,
    )
    k8s_providers = {r["urn"] for r in everything if r.get("type") == K8S_PROVIDER}
    if lost == "region":
        # The region is down, not deleted: the DigitalOcean API still reports its cluster, VPC,
        # load balancer and bucket, so the refresh keeps them, and `up` replaces them in the new
        # region, which protection refuses ("unable to replace resource ... marked for
        # protection", pulumi pkg/resource/deploy/step_generator.go).
        plan.unprotect = sorted(
            r["urn"]
            for r in resources
            if r["urn"] in gone
            and r.get("protect")
            and ref_urn(str(r.get("provider") or "")) not in k8s_providers
        )
    # Cloud resources the program declares that the export does not hold: created after the
    # backup (or not yet), and the pending creates that `stack import` drops.
    pending = {
        (op.get("resource") or {}).get("urn")
        for op in doc["deployment"].get("pending_operations") or []
        if isinstance(op, dict) and op.get("type") == "creating"
    }
    plan.reconcile = sorted(
        urn
        for urn, r in program_resources.items()
        if r.type.startswith("digitalocean:") and (urn not in recorded or urn in pending)
    )
    plan.minutes = _critical_minutes(plan.recreated, deps, kinds)
    plan.commands = commands(doc, stack, lost, region, plan, program, dependents, gone, by_urn)
    plan.notes = _notes(doc, lost, plan)
    return plan


def _notes(doc: dict[str, Any], lost: str, plan: RecoveryPlan) -> list[str]:
    notes: list[str] = []
    if lost == "region":
        notes += [
            "A load balancer's IP cannot move to another region: the new one gets a new IP, and "
            "the DNS records (retained, updated in place) point the hosts at it; clients follow "
            "after the records' TTL (ingress.dnsTtl).",
            "Workload identities hold: same trust domain and root, and the mesh CA's "
            "intermediate and its key are tls resources kept in state (not regional), so the "
            "new istiod signs with the same intermediate.",
            "Logs in a Spaces bucket of the lost region are out of reach; metrics, traces and "
            "Grafana state are rebuilt empty; block volumes stay in the lost region "
            "(docs/recovery.md).",
        ]
    else:
        notes += [
            "The load balancer, its IP, the DNS zone and records, the VPC and the mesh CA's "
            "intermediate stay: clients keep the same address, workloads the same identities.",
            "Everything in the cluster is recreated under the same URNs; metrics, traces and "
            "dev/staging logs start empty, Flagger keeps no promotion state (docs/recovery.md).",
        ]
        cluster = cluster_of(doc["deployment"]["resources"])
        inputs = (cluster or {}).get("inputs") or {}
        if cluster is not None and inputs.get("destroyAllAssociatedResources") is False:
            notes.append(
                "The cluster was created with destroyAllAssociatedResources: false, so its "
                "block volumes (pvc-*, `doctl compute volume list`) outlive it: re-attach "
                "them as static PersistentVolumes (driver dobs.csi.digitalocean.com, "
                "volumeHandle = the volume ID) to keep their data, or delete them "
                "(docs/recovery.md)."
            )
    return notes
