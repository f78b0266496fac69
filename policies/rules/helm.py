"""Helm charts and the objects they render, as the analyzer gets them: a `helm.v3.Release`
with its inputs, a `helm.v4.Chart` (a remote component) with its inputs only offline and with
no properties in a real preview, whose rendered objects arrive as its children; chart names
and repository URLs cleaned for messages (no credentials, query or fragment).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from policies.rules.base import dig, is_mapping

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_V4_CHART = "kubernetes:helm.sh/v4:Chart"
HELM_V3_CHART = "kubernetes:helm.sh/v3:Chart"
HELM_TYPES = frozenset({HELM_RELEASE, HELM_V4_CHART, HELM_V3_CHART})

# pulumi-kubernetes' component resources: what the engine sends for them is not their inputs.
# The remote ones (`remote=True` in the SDK: the provider's Construct registers them with no
# properties) reach `Analyze` as `{}`; the others are components of the language SDK. Either
# way their objects reach the analyzer as their own children.
REMOTE_COMPONENTS = frozenset(
    {
        HELM_V4_CHART,
        "kubernetes:yaml/v2:ConfigFile",
        "kubernetes:yaml/v2:ConfigGroup",
        "kubernetes:kustomize/v2:Directory",
    }
)
KUBERNETES_COMPONENTS = REMOTE_COMPONENTS | {
    HELM_V3_CHART,
    "kubernetes:yaml:ConfigFile",
    "kubernetes:yaml:ConfigGroup",
    "kubernetes:kustomize:Directory",
}


def clean_url(url: str) -> str:
    """A URL or chart reference fit for a message: no `user:password@` (a password may itself
    contain `@`), no query, no fragment; a reference without a scheme loses its query too."""
    text = url.strip()
    if "://" not in text:
        # No scheme: `user:pass@host/x` would parse as scheme `user`; what precedes the last
        # `@` before the path is credentials.
        head, slash, path = text.partition("/")
        return re.split(r"[?#]", head.rpartition("@")[2] + slash + path, maxsplit=1)[0]
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced `[` in the host: keep only what cannot be secret
        return re.split(r"[?#]", text.rpartition("@")[2], maxsplit=1)[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def chart_name(ref: str) -> str:
    """A chart's name from its reference as written (`oci://host/path/name?x`, `repo/name`,
    a path, or the name): the last path segment, without credentials, query or fragment."""
    return clean_url(ref).rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Chart:
    """A Helm release as the program declares it (its inputs). `values` is read only when a
    rule asks for it, so a value unknown at preview stops only the rules that need it."""

    resource: Any
    release: str
    chart: str  # the chart's name: no `repo/` alias, credentials or query
    chart_ref: str  # as written (`oci://...`, `repo/name`, a path, or the name)
    version: str
    repository: str
    namespace: str

    @cached_property
    def values(self) -> Mapping[str, Any]:
        found = dig(self.resource.props, "values", default={})
        return found if is_mapping(found) else {}

    def where(self) -> str:
        return f"Helm release {self.namespace}/{self.release} (chart {self.chart})"


def _declares_chart(resource: Any) -> bool:
    """Whether the engine sent the chart's inputs: a Release always has them; a component
    Chart only where its inputs reach the analyzer (the offline plan), never in a real
    preview (`{}` in `Analyze`, its component outputs in `AnalyzeStack`)."""
    if resource.resource_type not in HELM_TYPES:
        return False
    return resource.resource_type == HELM_RELEASE or "chart" in resource.props


def chart(resource: Any) -> Chart | None:
    """The chart a Helm resource installs, or None for any other resource and for a component
    Chart whose inputs the engine does not send (its rendered children are checked instead)."""
    if not _declares_chart(resource):
        return None
    props = resource.props
    ref = str(dig(props, "chart", default=""))
    return Chart(
        resource=resource,
        release=str(dig(props, "name", default="") or resource.name),
        chart=chart_name(ref),
        chart_ref=ref,
        version=str(dig(props, "version", default="")),
        repository=str(dig(props, "repositoryOpts", "repo", default="")),
        namespace=str(dig(props, "namespace", default="") or "default"),
    )


def charts(resources: Iterable[Any], *names: str) -> list[Chart]:
    """The charts installed (all, or those named), picked by type and chart name before any
    other property is read: an unknown value in one release stops no rule about another."""
    wanted = set(names)
    found = []
    for r in resources:
        if not _declares_chart(r):
            continue
        if wanted and chart_name(str(dig(r.props, "chart", default=""))) not in wanted:
            continue
        c = chart(r)
        if c is not None:
            found.append(c)
    return found


def urn_type(urn: str) -> str:
    """The resource type of a URN (the last of its parent-qualified types)."""
    parts = urn.split("::", 3)
    return parts[2].rsplit("$", 1)[-1] if len(parts) == 4 else ""


def urn_name(urn: str) -> str:
    parts = urn.split("::", 3)
    return parts[3] if len(parts) == 4 else ""


def parent_urn(resource: Any) -> str:
    """The URN of the resource's parent as the analyzer gives it (`opts.parent`; in a stack
    policy also the parent resource itself), or '' for none."""
    parent = getattr(resource, "parent", None)
    if parent is not None and getattr(parent, "urn", None):
        return str(parent.urn)
    opts = getattr(resource, "opts", None)
    return str(getattr(opts, "parent", None) or "")


def v4_chart_parent(resource: Any) -> str | None:
    """The URN of the `helm.v4.Chart` that rendered this object, or None."""
    parent = parent_urn(resource)
    return parent if parent and urn_type(parent) == HELM_V4_CHART else None
