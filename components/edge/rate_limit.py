"""Ingress protection: Envoy's local rate limit on the ingress gateway only.

EnvoyFilter is still `networking.istio.io/v1alpha3` (there is no v1). The filter goes into the
gateway's HTTP connection manager just before the router (after Istio's own filters), as in
Istio's "local rate limit" task with `context: GATEWAY`. The token bucket is per gateway
replica; requests over it get 429 before they reach any workload.
"""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.edge.config import RateLimit

ENVOY_FILTER_API = "networking.istio.io/v1alpha3"
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)


def _percent(value: int, runtime_key: str) -> dict[str, Any]:
    """A fraction of requests, overridable at runtime under `runtime_key` (Envoy's own)."""
    return {
        "default_value": {"numerator": value, "denominator": "HUNDRED"},
        "runtime_key": runtime_key,
    }


def local_rate_limit(cfg: RateLimit) -> dict[str, Any]:
    """EnvoyFilter inserting the local rate limit into the gateway's HTTP filter chain."""
    bucket = {
        "max_tokens": cfg.requests_per_interval,
        "tokens_per_fill": cfg.requests_per_interval,
        "fill_interval": f"{cfg.interval_seconds}s",
    }
    filter_value = {
        "name": LOCAL_RATE_LIMIT,
        "typed_config": {
            "@type": LOCAL_RATE_LIMIT_TYPE,
            "stat_prefix": "http_local_rate_limiter",
            "token_bucket": bucket,
            "filter_enabled": _percent(100, "local_rate_limit_enabled"),
            "filter_enforced": _percent(100, "local_rate_limit_enforced"),
            "response_headers_to_add": [
                {
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    "header": {"key": "x-local-rate-limit", "value": "true"},
                }
            ],
        },
    }
    spec = {
        "workloadSelector": {"labels": dict(mesh.INGRESS_SELECTOR)},
        "configPatches": [
            {
                "applyTo": "HTTP_FILTER",
                "match": {
                    "context": "GATEWAY",
                    "listener": {
                        "filterChain": {
                            "filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.router"},
                            }
                        }
                    },
                },
                "patch": {"operation": "INSERT_BEFORE", "value": filter_value},
            }
        ],
    }
    return {
        "apiVersion": ENVOY_FILTER_API,
        "kind": "EnvoyFilter",
        "metadata": {
            "name": "ingress-local-rate-limit",
            "namespace": mesh.INGRESS_NAMESPACE,
            "labels": manifests.labels("rate-limit"),
        },
        "spec": spec,
    }
