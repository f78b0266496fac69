"""The `istio` config section: the control planes (`revisions`, each at a pinned chart version
with the tags it holds, `revisions.py`), what selects them (the mesh tag, per-namespace and
per-gateway overrides), the restart epoch, HA sizing of istiod and the gateways, sidecar
resources, with per-tier profiles (trace sampling comes from `observability.tracing`). Rules
that need the tier or several fields at once live in `istio_problems`, called from the stack's
composition, so every refusal names the full key path. Pure: no Pulumi.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

from pydantic import field_validator

from components.base import mesh
from components.base.model import ConfigModel, Problem, between
from components.base.profiles import Profile
from components.base.workload import (
    Resources,
    Workload,
    cpu_milli,
    disruption_problems,
    memory_mi,
)
from components.base.workload import workload_defaults as _workload
from components.istio.revisions import (
    DEFAULT_TAG,
    GatewayCanary,
    IstioRevision,
    pinned_version,
    rev_label,
    revision_problems,
    version_key,
)

# Platform namespaces `namespaceRevisions` may not name (gateways have their own keys).
_NOT_MESH_NAMESPACES = (
    mesh.ROOT_NAMESPACE,
    mesh.INGRESS_NAMESPACE,
    mesh.EGRESS_NAMESPACE,
    mesh.CERT_MANAGER_NAMESPACE,
)

# Sidecars run beside every application pod: their requests are capped so the mesh does not
# eat the workload pool (issue 3: <= 100m CPU / 128Mi).
MAX_PROXY_CPU_MILLI = 100
MAX_PROXY_MEMORY_MI = 128


@dataclass(frozen=True)
class IstioRules:
    """Fewest replicas a tier allows for each HA component (dev may run single replicas)."""

    min_istiod: int
    min_ingress_gateway: int
    min_egress_gateway: int


def _proxy(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, str]:
    return {
        "cpuRequest": cpu,
        "memoryRequest": memory,
        "cpuLimit": cpu_limit,
        "memoryLimit": memory_limit,
    }


def _defaults(istiod: dict, ingress: dict, egress: dict, proxy: dict) -> dict:
    return {
        # The release stays `istiod-1-30`; the version is data, never the newest pin, so that
        # pinning a new Istio release upgrades nothing until a stack lists it.
        "revisions": [{"name": "1-30", "version": "1.30.3", "tags": ["stable", DEFAULT_TAG]}],
        "revisionTag": "stable",
        "namespaceRevisions": {},
        "restartEpoch": 0,
        "istiod": istiod,
        "ingressGateway": ingress,
        "egressGateway": egress,
        "proxy": proxy,
        "logAsJson": True,
    }


class IstioConfig(ConfigModel):
    """Istio control plane and gateways."""

    # Control planes installed side by side (`istiod-<name>`): name, pinned version, tags.
    revisions: tuple[IstioRevision, ...]
    # Revision tag mesh namespaces select (`istio.io/rev: <tag>`); moving it moves them.
    revision_tag: str
    # Per mesh namespace, another `istio.io/rev` (a tag, or a revision): `{shop: canary}`.
    namespace_revisions: dict[str, str]
    # Revision or tag the ingress / egress gateway runs on; unset: `revisionTag`.
    ingress_gateway_revision: str | None = None
    egress_gateway_revision: str | None = None
    # A second ingress gateway on another revision, behind the primary's Service.
    ingress_gateway_canary: GatewayCanary | None = None
    # Bump to restart the gateways, re-injected (a pod-template annotation; 0: none).
    restart_epoch: int
    # Base chart (CRDs, default validator) version; unset: the newest revision's.
    base_version: str | None = None
    istiod: Workload
    ingress_gateway: Workload
    egress_gateway: Workload
    # Sidecar container resources (requests capped at 100m CPU / 128Mi).
    proxy: Resources
    # Istio's own log format for istiod and proxies (access logs are always JSON).
    log_as_json: bool

    PROFILES: ClassVar[dict[str, Profile[IstioRules]]] = {
        "dev": Profile(
            _defaults(
                _workload(1, 1, "250m", "512Mi", "1", "1Gi"),
                _workload(1, 2, "100m", "128Mi", "1", "512Mi"),
                _workload(1, 1, "100m", "128Mi", "1", "512Mi"),
                _proxy("50m", "64Mi", "1", "512Mi"),
            ),
            IstioRules(min_istiod=1, min_ingress_gateway=1, min_egress_gateway=1),
        ),
        "staging": Profile(
            _defaults(
                _workload(2, 4, "500m", "1Gi", "2", "2Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                _workload(2, 3, "100m", "128Mi", "1", "512Mi"),
                _proxy("100m", "128Mi", "2", "1Gi"),
            ),
            IstioRules(min_istiod=2, min_ingress_gateway=2, min_egress_gateway=2),
        ),
        "production": Profile(
            _defaults(
                # At most 6: the system pool (3 x s-4vcpu-8gb, fixed) holds two 2 GiB istiod
                # pods per node beside the other system pods; more would stay Pending (the
                # capacity check's "at maximum replicas").
                _workload(3, 6, "1", "2Gi", "4", "4Gi"),
                _workload(3, 10, "500m", "512Mi", "2", "1Gi"),
                _workload(2, 5, "250m", "256Mi", "2", "1Gi"),
                _proxy("100m", "128Mi", "2", "1Gi"),
            ),
            IstioRules(min_istiod=3, min_ingress_gateway=3, min_egress_gateway=2),
        ),
    }

    @field_validator("revision_tag", "ingress_gateway_revision", "egress_gateway_revision")
    @classmethod
    def _label(cls, v: str | None) -> str | None:
        return None if v is None else rev_label(v)

    @field_validator("namespace_revisions")
    @classmethod
    def _namespace_revisions(cls, v: dict[str, str]) -> dict[str, str]:
        for ns, rev in v.items():
            if ns in _NOT_MESH_NAMESPACES:
                raise ValueError(
                    f"{ns!r} is not a mesh namespace: gateways move with "
                    "istio.ingressGatewayRevision and istio.egressGatewayRevision"
                )
            rev_label(rev)
        return v

    @field_validator("restart_epoch")
    @classmethod
    def _epoch(cls, v: int) -> int:
        return between(0, 1_000_000, " (bump it by one per restart)")(v)

    @field_validator("base_version")
    @classmethod
    def _base_version(cls, v: str | None) -> str | None:
        return None if v is None else pinned_version(v)

    # --- what the builders read (config is valid by then; see revisions.py) ---------------

    def holder(self, ref: str) -> IstioRevision | None:
        """The installed revision `ref` selects: its name, or a tag it holds."""
        for revision in self.revisions:
            if ref == revision.name or ref in revision.tags:
                return revision
        return None

    def _held(self, ref: str) -> IstioRevision:
        found = self.holder(ref)
        if found is None:
            raise LookupError(f"no installed revision for {ref!r} (config was not checked)")
        return found

    @property
    def revision(self) -> str:
        """The revision the mesh tag points at."""
        return self._held(self.revision_tag).name

    @property
    def default_revision(self) -> str:
        """The base chart's `defaultRevision`: the holder of `default` (istio#58578), else the
        mesh tag's revision. Derived, so the two can never disagree."""
        holder = self.holder(DEFAULT_TAG)
        return holder.name if holder else self.revision

    @property
    def base_chart_version(self) -> str:
        """The base chart's version: `baseVersion`, else the newest revision's."""
        if self.base_version is not None:
            return self.base_version
        return max((r.version for r in self.revisions), key=version_key)

    @property
    def ingress_revision(self) -> str:
        """`istio.io/rev` of the ingress gateway's pods: its own setting, else the mesh tag."""
        return self.ingress_gateway_revision or self.revision_tag

    @property
    def egress_revision(self) -> str:
        return self.egress_gateway_revision or self.revision_tag

    def chart_version(self, ref: str) -> str:
        """The chart version of what `ref` selects: a gateway's chart follows its control plane."""
        return self._held(ref).version

    def rev_labels(self, mesh_namespaces: Collection[str]) -> dict[str, str | None]:
        """The `istio.io/rev` label of every namespace that runs proxies (None: no label).

        A namespace's label takes precedence over a pod's (the injectors' `rev.object.`
        webhooks only match namespaces without one, istio 1.30 `mutatingwebhook.yaml`), so a
        gateway namespace carries its gateway's revision, and none at all while a gateway
        canary runs beside it: then each pod's own label picks its control plane."""
        ingress = None if self.ingress_gateway_canary else self.ingress_revision
        labels: dict[str, str | None] = {
            mesh.INGRESS_NAMESPACE: ingress,
            mesh.EGRESS_NAMESPACE: self.egress_revision,
        }
        for ns in mesh_namespaces:
            labels[ns] = self.namespace_revisions.get(ns, self.revision_tag)
        return labels


def istio_problems(istio: IstioConfig, rules: IstioRules, environment: str) -> list[Problem]:
    """Rules the tier sets or that span fields: the upgrade preconditions (`revisions.py`), HA
    minimums, disruption budgets that would block drains, sidecar request caps. `environment`
    is only named in messages."""
    problems = revision_problems(istio)
    for key, workload, minimum in (
        ("istiod", istio.istiod, rules.min_istiod),
        ("ingressGateway", istio.ingress_gateway, rules.min_ingress_gateway),
        ("egressGateway", istio.egress_gateway, rules.min_egress_gateway),
    ):
        if workload.min_replicas < minimum:
            problems.append(
                Problem(
                    f"istio.{key}.minReplicas",
                    workload.min_replicas,
                    f"must be at least {minimum} in {environment} (HA minimum)",
                )
            )
        problems += disruption_problems(f"istio.{key}", workload)
    if cpu_milli(istio.proxy.cpu_request) > MAX_PROXY_CPU_MILLI:
        problems.append(
            Problem(
                "istio.proxy.cpuRequest",
                istio.proxy.cpu_request,
                f"must be at most {MAX_PROXY_CPU_MILLI}m (a sidecar runs beside every pod)",
            )
        )
    if memory_mi(istio.proxy.memory_request) > MAX_PROXY_MEMORY_MI:
        problems.append(
            Problem(
                "istio.proxy.memoryRequest",
                istio.proxy.memory_request,
                f"must be at most {MAX_PROXY_MEMORY_MI}Mi (a sidecar runs beside every pod)",
            )
        )
    return problems
