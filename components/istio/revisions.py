"""Control planes side by side: the model of `istio.revisions` (each an `istiod-<name>` release
at a pinned chart version, holding revision tags), and the preconditions of a canary upgrade,
checked offline so a bad phase order is a config error naming the key, never a half-applied
`pulumi up` (docs/ingress.md, "Upgrading Istio"). What only a previous plan shows (moving
`default` to a revision the same `up` installs) is the review's blocker
(`tools/review_diff.py`). Pure: no Pulumi.

The facts these checks encode (Istio 1.30 charts and docs, `setup/upgrade/canary` and `helm`):
a tag is an alias with one owner, so moving it is one in-place update; `default` also takes
`istio-injection=enabled` namespaces and must be where the base chart's `defaultRevision` points
(istio#58578, which nothing upstream checks); the base chart carries the CRDs, shared by every
revision, so it is never older than an istiod; a revision canary may jump at most two minors;
whatever selects a revision (a namespace label, a gateway) must name one that is installed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import field_validator

from components.base import pins
from components.base.model import ConfigModel, Problem

if TYPE_CHECKING:
    from components.istio.config import IstioConfig

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
DEFAULT_TAG = "default"
MAX_MINOR_SKEW = 2  # a revision canary may skip one minor (1.28 -> 1.30), not more
CANARY_SERVICE_TYPE = "None"  # the gateway chart then renders no Service


def rev_label(value: str) -> str:
    """A value of the `istio.io/rev` label: a DNS-1123 label without dots."""
    if not _LABEL.match(value) or "." in value:
        raise ValueError(
            "must be a DNS-1123 label such as '1-30' or 'stable': lowercase letters, "
            "digits and '-', at most 63 characters (no dots: '1.30' is not allowed)"
        )
    return value


def pinned_version(value: str) -> str:
    if value not in pins.ISTIO_VERSIONS:
        raise ValueError(
            f"must be a pinned Istio chart version: {', '.join(pins.ISTIO_VERSIONS)} "
            "(components/base/pins.py ISTIO_VERSIONS; a new version is pinned there first)"
        )
    return value


def version_key(version: str) -> tuple[int, int, int]:
    """'1.30.3' -> (1, 30, 3); pins hold only such versions (a test keeps them so)."""
    match = _VERSION.match(version)
    if not match:
        raise ValueError(f"not an Istio release version: {version!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


class IstioRevision(ConfigModel):
    """One control plane: the `istiod-<name>` release of the istiod chart at `version`."""

    # Revision name (`istiod-<name>`, pod label `istio.io/rev: <name>`): '1-30', '1-31-0'.
    name: str
    # Exact Istio chart version, one of `pins.ISTIO_VERSIONS`.
    version: str
    # Revision tags it holds (`stable`, `canary`, `default`); each tag has exactly one holder.
    tags: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        rev_label(v)
        if v == DEFAULT_TAG:
            raise ValueError(
                "must not be 'default': that is the tag of the default revision, "
                "not a revision name"
            )
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return pinned_version(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for tag in v:
            rev_label(tag)
        return v


class GatewayCanary(ConfigModel):
    """A second ingress gateway on another revision, whose pods the primary gateway's Service
    selects too (same `app` and `istio` labels): traffic splits by replica count."""

    # Revision or tag its pods select (`istio.io/rev`).
    revision: str
    # Replicas (no autoscaling, no budget of its own: the primary's budget covers its pods).
    replicas: int = 1
    # Type of its own Service: only "None" (none). The primary's NodePort Service already
    # reaches its pods; a LoadBalancer would make a second DigitalOcean load balancer.
    service_type: str = CANARY_SERVICE_TYPE

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        return rev_label(v)

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, v: int) -> int:
        if not 1 <= v <= 10:
            raise ValueError("must be between 1 and 10 (a canary takes a share of the traffic)")
        return v


def _installed(istio: IstioConfig) -> str:
    names = ", ".join(r.name for r in istio.revisions)
    tags = ", ".join(t for r in istio.revisions for t in r.tags) or "none"
    return f"installed revisions: {names}; tags they hold: {tags}"


def revision_problems(istio: IstioConfig) -> list[Problem]:
    """Every precondition of the revision list and of what selects a revision."""
    if not istio.revisions:
        return [
            Problem(
                "istio.revisions",
                [],
                "must list at least one control plane, e.g. "
                "[{name: '1-30', version: '1.30.3', tags: [stable, default]}]",
            )
        ]
    return (
        _tag_problems(istio)
        + _version_problems(istio)
        + _reference_problems(istio)
        + _canary_problems(istio)
    )


def _tag_problems(istio: IstioConfig) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, int] = {}
    holders: dict[str, str] = {}
    revision_names = {r.name for r in istio.revisions}
    for i, revision in enumerate(istio.revisions):
        if revision.name in names:
            problems.append(
                Problem(
                    f"istio.revisions[{i}].name",
                    revision.name,
                    f"is listed twice (also istio.revisions[{names[revision.name]}]): one "
                    "release per revision",
                )
            )
        names.setdefault(revision.name, i)
        for tag in revision.tags:
            key = f"istio.revisions[{i}].tags"
            if tag in revision_names:
                problems.append(
                    Problem(key, tag, "is a revision name: a tag must differ from every revision")
                )
            elif tag in holders and tag == DEFAULT_TAG:
                problems.append(
                    Problem(
                        key,
                        tag,
                        f"is already held by revision {holders[tag]}: at most one revision holds "
                        "`default` (it takes istio-injection=enabled namespaces, and the base "
                        "chart's defaultRevision follows it); move it, do not copy it",
                    )
                )
            elif tag in holders:
                problems.append(
                    Problem(
                        key,
                        tag,
                        f"is already held by revision {holders[tag]}: a tag has one owner "
                        "(two would render the same webhook); move it, do not copy it",
                    )
                )
            holders.setdefault(tag, revision.name)
    if istio.revision_tag in revision_names:
        problems.append(
            Problem(
                "istio.revisionTag",
                istio.revision_tag,
                "must be a tag, not a revision name (a tag is an alias that can move)",
            )
        )
    elif istio.revision_tag not in holders:
        problems.append(
            Problem(
                "istio.revisionTag",
                istio.revision_tag,
                f"must be a tag exactly one revision holds ({_installed(istio)}): the mesh "
                "namespaces select it",
            )
        )
    return problems


def _version_problems(istio: IstioConfig) -> list[Problem]:
    """Base chart >= every istiod; at most two minors between any two installed versions."""
    problems: list[Problem] = []
    base = istio.base_chart_version
    if istio.base_version is not None:
        older = [r for r in istio.revisions if version_key(r.version) > version_key(base)]
        if older:
            newest = max((r.version for r in older), key=version_key)
            problems.append(
                Problem(
                    "istio.baseVersion",
                    base,
                    f"must be at least every istiod's version (newest: {newest}): the base "
                    "chart's CRDs serve every revision; upgrade it first or leave it unset "
                    "(the newest revision's version)",
                )
            )
    top = max([base, *(r.version for r in istio.revisions)], key=version_key)
    top_major, top_minor, _ = version_key(top)
    for i, revision in enumerate(istio.revisions):
        major, minor, _ = version_key(revision.version)
        if major != top_major or top_minor - minor > MAX_MINOR_SKEW:
            problems.append(
                Problem(
                    f"istio.revisions[{i}].version",
                    revision.version,
                    f"is more than {MAX_MINOR_SKEW} minor versions behind {top} (installed "
                    "beside it): a revision canary may jump at most two minors; upgrade "
                    "through an intermediate version",
                )
            )
    return problems


def _reference_problems(istio: IstioConfig) -> list[Problem]:
    """Namespaces and gateways select an installed revision (a name or a tag it holds): one
    that is being removed must be moved off first."""
    problems: list[Problem] = []
    refs: list[tuple[str, str | None]] = [
        ("istio.ingressGatewayRevision", istio.ingress_gateway_revision),
        ("istio.egressGatewayRevision", istio.egress_gateway_revision),
        *((f"istio.namespaceRevisions.{ns}", rev) for ns, rev in istio.namespace_revisions.items()),
    ]
    if istio.ingress_gateway_canary is not None:
        refs.append(("istio.ingressGatewayCanary.revision", istio.ingress_gateway_canary.revision))
    for key, ref in refs:
        if ref is not None and istio.holder(ref) is None:
            problems.append(
                Problem(
                    key,
                    ref,
                    f"selects no installed control plane ({_installed(istio)}): move it to an "
                    "installed revision or tag before removing the one it is on",
                )
            )
    return problems


def _canary_problems(istio: IstioConfig) -> list[Problem]:
    canary = istio.ingress_gateway_canary
    if canary is None or canary.service_type == CANARY_SERVICE_TYPE:
        return []
    return [
        Problem(
            "istio.ingressGatewayCanary.serviceType",
            canary.service_type,
            f"must be {CANARY_SERVICE_TYPE!r}: the primary ingress gateway's NodePort Service "
            "already sends traffic to the canary's pods; a Service of its own would be a second "
            "load balancer (LoadBalancer: a second DigitalOcean load balancer and IP) or collide "
            "on the fixed node ports (NodePort)",
        )
    ]


def namespace_revision_problems(istio: IstioConfig, mesh_namespaces: list[str]) -> list[Problem]:
    """An override for a namespace that is not a declared mesh namespace would be ignored."""
    return [
        Problem(
            f"istio.namespaceRevisions.{ns}",
            rev,
            f"is not a declared mesh namespace ({', '.join(mesh_namespaces) or 'none'}); "
            "gateways move with istio.ingressGatewayRevision and istio.egressGatewayRevision",
        )
        for ns, rev in istio.namespace_revisions.items()
        if ns not in mesh_namespaces
    ]
