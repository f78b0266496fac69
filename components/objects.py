"""Registering the Kubernetes objects we author: one Pulumi resource per object, typed where
pulumi_kubernetes has a type (so previews show a typed diff), a CustomResource otherwise."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


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
    return k8s.apiextensions.CustomResource(
        name,
        api_version=obj["apiVersion"],
        kind=kind,
        metadata=meta,
        spec=obj["spec"],
        opts=opts,
    )
