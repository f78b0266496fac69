"""Registering what a concern built: one Pulumi resource per authored object (typed where
pulumi_kubernetes has a type, so previews show a typed diff; a CustomResource otherwise), and
third-party software from its official Helm chart, pinned (`pins.py`).

Two ways to install a chart, chosen per chart (DESIGN.md): `release` (`helm.v3.Release`) keeps
Helm hooks and `helm upgrade` semantics, for charts that rely on hooks or on
`.Release.IsUpgrade` (Istio, cert-manager, kube-prometheus-stack); `chart` (`helm.v4.Chart`)
renders each object as its own Pulumi resource, one preview diff per object, for hook-free
charts."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pydantic import SecretStr

from components.base.pins import ChartPin


def register(name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """`obj` is a full manifest dict from a pure builder (values may be Outputs, e.g. secrets)."""
    kind, meta = obj["kind"], obj["metadata"]
    if kind == "ConfigMap":
        return k8s.core.v1.ConfigMap(name, metadata=meta, data=obj.get("data"), opts=opts)
    if kind == "Secret":
        return k8s.core.v1.Secret(
            name,
            metadata=meta,
            type=obj.get("type"),
            string_data=obj.get("stringData"),
            opts=opts,
        )
    if kind == "NetworkPolicy":
        return k8s.networking.v1.NetworkPolicy(name, metadata=meta, spec=obj["spec"], opts=opts)
    if kind == "Service":
        return k8s.core.v1.Service(name, metadata=meta, spec=obj["spec"], opts=opts)
    if kind == "MutatingWebhookConfiguration":
        return k8s.admissionregistration.v1.MutatingWebhookConfiguration(
            name, metadata=meta, webhooks=obj["webhooks"], opts=opts
        )
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=kind,
        metadata=meta,
        spec=obj["spec"],
        opts=opts,
    )


def release(
    name: str,
    pin: ChartPin,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """A pinned release with a fixed name (no random suffix) that waits for readiness and is
    atomic: a failed install is purged and a failed upgrade rolled back (Helm's `--atomic`),
    cleaning up what the failed attempt created, so the cluster keeps the last good release."""
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=pin.chart,
        version=pin.version,
        namespace=namespace,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repository),
        values=values,
        skip_await=False,
        atomic=True,
        timeout=900,
        max_history=10,
        cleanup_on_fail=True,
        opts=opts,
    )


def chart(
    name: str,
    pin: ChartPin,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v4.Chart:
    """A pinned chart rendered into one Pulumi resource per object (no hooks)."""
    return k8s.helm.v4.Chart(
        name,
        name=name,
        chart=pin.chart,
        version=pin.version,
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=pin.repository),
        namespace=namespace,
        values=values,
        opts=opts,
    )


def secret_output(value: SecretStr | None) -> pulumi.Output[str] | None:
    """A config secret as a Pulumi secret Output (None stays None), so it never appears in
    plaintext in state, previews or the plan."""
    return None if value is None else pulumi.Output.secret(value.get_secret_value())
