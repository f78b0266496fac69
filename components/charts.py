"""Installing third-party software from its official Helm chart, pinned by version.

Two ways, chosen per chart (DESIGN.md): `release` (`helm.v3.Release`) keeps Helm hooks and
`helm upgrade` semantics, for charts that rely on hooks or on `.Release.IsUpgrade` (Istio,
cert-manager, kube-prometheus-stack); `chart` (`helm.v4.Chart`) renders each object as its own
Pulumi resource, one preview diff per object, for hook-free charts."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def release(
    name: str,
    chart: str,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    version: str,
    repository: str,
) -> k8s.helm.v3.Release:
    """A pinned release with a fixed name (no random suffix) that waits for readiness and rolls
    back a failed upgrade."""
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart,
        version=version,
        namespace=namespace,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repository),
        values=values,
        skip_await=False,
        timeout=900,
        max_history=10,
        cleanup_on_fail=True,
        opts=opts,
    )


def chart(
    name: str,
    chart: str,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    version: str,
    repository: str,
) -> k8s.helm.v4.Chart:
    """A pinned chart rendered into one Pulumi resource per object (no hooks)."""
    return k8s.helm.v4.Chart(
        name,
        name=name,
        chart=chart,
        version=version,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=repository),
        namespace=namespace,
        values=values,
        opts=opts,
    )
