"""Revision tags as objects the program authors: per tag, the injector's
`MutatingWebhookConfiguration` `istio-revision-tag-<tag>` and the Service
`istiod-revision-tag-<tag>`, both in `istio-system` and pointing at the revision holding it.
Pure: no Pulumi.

Why not the istiod chart's `revisionTags`: two releases rendering the same tag (the old
revision's and the new one's, while a tag moves) are one cluster object under two Pulumi
URNs, so the move is a create-before-delete that fails with "already exists" (and istioctl's
IST0139, istio#43932). Authored here, each tag is one Pulumi resource with a fixed name:
moving it is an in-place update of the same URN, and every istiod release sets
`revisionTags: []`.

The objects mirror the istiod chart at 1.30.3 exactly — `templates/revision-tags-mwc.yaml` and
`templates/revision-tags-svc.yaml` (istio/istio@56df41f6, manifests/charts/istio-control/
istio-discovery/) rendered in `istio-system` with the values our istiod releases use:
`istiodRemote.injectionPath: /inject`, no injection URL or CA bundle,
`sidecarInjectorWebhook.reinvocationPolicy: Never`, `enableNamespacesByDefault: false`, no
webhook or Service annotations, no IP family settings. Labels are the chart's own, except
those that describe the rendering Helm release or operator (`release`, `helm.sh/chart`,
`app.kubernetes.io/instance|managed-by|version|part-of`, `install.operator.istio.io/
owning-resource`), which become ours (`manifests.labels`).

No `caBundle`: istiod patches it into every webhook of a configuration labelled with its own
revision (`pkg/webhooks/webhookpatch.go`), and server-side apply leaves a field the program
does not set to the manager that set it. A moved tag keeps its bundle: every revision's
webhook certificate comes from the one plug-in mesh CA.
"""

from __future__ import annotations

from typing import Any

from components.base import manifests, mesh
from components.istio.revisions import DEFAULT_TAG

TAG_LABEL = "istio.io/tag"
INJECTION_PATH = "/inject"
REINVOCATION_POLICY = "Never"

# The istiod Service's ports (templates/service.yaml and revision-tags-svc.yaml).
ISTIOD_PORTS: tuple[dict[str, Any], ...] = (
    {"port": 15010, "name": "grpc-xds", "protocol": "TCP"},
    {"port": mesh.XDS_PORT, "name": "https-dns", "protocol": "TCP"},
    {"port": 443, "name": "https-webhook", "targetPort": mesh.WEBHOOK_PORT, "protocol": "TCP"},
    {"port": 15014, "name": "http-monitoring", "protocol": "TCP"},
)


def webhook_name(tag: str) -> str:
    return f"istio-revision-tag-{tag}"


def service_name(tag: str) -> str:
    return f"istiod-revision-tag-{tag}"


def _labels(tag: str, revision: str, **chart: str) -> dict[str, str]:
    return {
        **manifests.labels("istiod"),
        TAG_LABEL: tag,
        mesh.REVISION_LABEL: revision,
        "operator.istio.io/component": "Pilot",
        **chart,
    }


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def _webhook(
    prefix: str, revision: str, namespaces: list[dict[str, Any]], objects: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chart's `core` webhook with its selectors."""
    return {
        "name": f"{prefix}sidecar-injector.istio.io",
        "clientConfig": {
            "service": {
                "name": f"istiod-{revision}",
                "namespace": mesh.ROOT_NAMESPACE,
                "path": INJECTION_PATH,
                "port": 443,
            }
        },
        "sideEffects": "None",
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "failurePolicy": "Fail",
        "reinvocationPolicy": REINVOCATION_POLICY,
        "admissionReviewVersions": ["v1"],
        "namespaceSelector": {"matchExpressions": namespaces},
        "objectSelector": {"matchExpressions": objects},
    }


def tag_webhook(tag: str, revision: str) -> dict[str, Any]:
    """`istio-revision-tag-<tag>`: injects pods of namespaces labelled `istio.io/rev: <tag>`
    (and pods labelled so in unlabelled namespaces) from `istiod-<revision>`; the `default`
    tag also takes `istio-injection=enabled` namespaces and `sidecar.istio.io/inject=true`
    pods."""
    rev, injection, inject = mesh.REVISION_LABEL, "istio-injection", "sidecar.istio.io/inject"
    not_disabled = _expr(inject, "NotIn", "false")
    webhooks = [
        _webhook(
            "rev.namespace.",
            revision,
            [_expr(rev, "In", tag), _expr(injection, "DoesNotExist")],
            [not_disabled],
        ),
        _webhook(
            "rev.object.",
            revision,
            [_expr(rev, "DoesNotExist"), _expr(injection, "DoesNotExist")],
            [not_disabled, _expr(rev, "In", tag)],
        ),
    ]
    if tag == DEFAULT_TAG:
        webhooks += [
            _webhook("namespace.", revision, [_expr(injection, "In", "enabled")], [not_disabled]),
            _webhook(
                "object.",
                revision,
                [_expr(injection, "DoesNotExist"), _expr(rev, "DoesNotExist")],
                [_expr(inject, "In", "true"), _expr(rev, "DoesNotExist")],
            ),
        ]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": webhook_name(tag),
            "labels": _labels(tag, revision, app="sidecar-injector"),
        },
        "webhooks": webhooks,
    }


def tag_service(tag: str, revision: str) -> dict[str, Any]:
    """`istiod-revision-tag-<tag>` over `istiod-<revision>`'s pods. It carries `istio: pilot`
    like the revision's own Service: the istiod ServiceMonitor excludes it by `istio.io/tag`,
    so each istiod pod is scraped once."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(tag),
            "namespace": mesh.ROOT_NAMESPACE,
            "labels": _labels(tag, revision, app="istiod", istio="pilot"),
        },
        "spec": {
            "ports": [dict(p) for p in ISTIOD_PORTS],
            "selector": {"app": "istiod", mesh.REVISION_LABEL: revision},
        },
    }


def tag_objects(tag: str, revision: str) -> list[dict[str, Any]]:
    """The pair of objects one tag is, in the order they are registered."""
    return [tag_webhook(tag, revision), tag_service(tag, revision)]
