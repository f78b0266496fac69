"""What the platform runs comes from where we said, at the version we reviewed: every Helm
chart is one of the pins in `components/base/pins.py` (chart, exact version, repository), and
no image is `latest` or untagged.

The pins are the program's own source of truth, so bumping a chart is one reviewed line that
the program and this policy both read. A `helm.v4.Chart` is a remote component: a real preview
sends it with no properties, so its pin is checked on what it rendered instead, the
`helm.sh/chart: <chart>-<version>` label every pinned chart's templates put on their objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from components.base import pins
from policies.rules.base import (
    RESOURCE,
    Rule,
    dig,
    dotted,
    excepted,
    exceptions_schema,
    is_mapping,
    k8s_type,
    labels,
    message,
    walk,
    where,
)
from policies.rules.helm import chart, clean_url, urn_name, v4_chart_parent


def all_pins() -> list[pins.ChartPin]:
    """Every pin of `components/base/pins.py`: its ChartPins, and each Istio chart at each
    pinned Istio version (`ISTIO_CHARTS` x `ISTIO_VERSIONS` from `ISTIO_REPOSITORY`)."""
    found = [p for p in vars(pins).values() if isinstance(p, pins.ChartPin)]
    repository = getattr(pins, "ISTIO_REPOSITORY", None)
    for chart_name in getattr(pins, "ISTIO_CHARTS", ()) if repository else ():
        for version in getattr(pins, "ISTIO_VERSIONS", ()):
            found.append(pins.ChartPin(chart_name, version, repository))
    return found


PINS = all_pins()
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _repo(url: str) -> str:
    return url.strip().rstrip("/")


def chart_label(pin: pins.ChartPin) -> str:
    """The `helm.sh/chart` label a chart's objects carry: `<name>-<version>`, `+` as `_`,
    at most 63 characters (the `<chart>.chart` helper of metrics-server, Flagger, the load
    tester, Tempo, Loki, kiali-server and opentelemetry-collector at their pinned versions)."""
    label = f"{pin.chart}-{pin.version}".replace("+", "_")[:63]
    return label.removesuffix("-")


PIN_LABELS = {chart_label(p): p for p in PINS}


def allowed_repositories(config: Mapping[str, Any]) -> set[str]:
    extra = [str(r) for r in config.get("extraRepositories") or []]
    return {_repo(p.repository) for p in PINS} | {_repo(r) for r in extra}


def check_rendered(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    """An object a `helm.v4.Chart` rendered: its `helm.sh/chart` label, where the chart's
    templates set one (CRDs from a chart's `crds/` carry none), names a pinned version."""
    parent = v4_chart_parent(resource)
    if parent is None or excepted(config, urn_name(parent)):
        return
    label = dig(labels(resource), "helm.sh/chart")
    if not isinstance(label, str) or label in PIN_LABELS:
        return
    same_chart = sorted(name for name, p in PIN_LABELS.items() if label.startswith(f"{p.chart}-"))
    pinned = f"; the pin is {', '.join(same_chart)}" if same_chart else ""
    yield message(
        f"{where(resource)}, rendered by Helm chart {urn_name(parent)}, carries helm.sh/chart "
        f"{label}, which is not a pin of `components/base/pins.py`{pinned}",
        "the chart that rendered it is not the reviewed version: an unpinned or bumped chart "
        "installs unreviewed templates with cluster-admin rights.",
        "install the chart through its ChartPin (`resources.chart`); objects of a subchart "
        "the pinned chart ships carry the subchart's label: grant the release an exception",
    )


def check_chart(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    c = chart(resource)
    if c is None:
        yield from check_rendered(resource, config)
        return
    if excepted(config, c.release):
        return
    repo = _repo(c.repository) or (c.chart_ref if c.chart_ref.startswith("oci://") else "")
    subject = c.where()
    shown = clean_url(repo)
    if not _EXACT.match(c.version):
        yield message(
            f"{subject} is not pinned to an exact version ({c.version or 'no version'})",
            "an unpinned or ranged version installs whatever the repository serves on the day "
            "of the next `pulumi up`: an unreviewed upgrade, different per stack.",
            "install it through `components/base/pins.py` with an exact version",
        )
    if repo not in allowed_repositories(config):
        yield message(
            f"{subject} comes from {shown or 'no repository (a local path or a repo alias)'}, "
            "not an allowed repository",
            "charts run with cluster-admin rights; only the official repositories recorded "
            "in `components/base/pins.py` are trusted.",
            "add a ChartPin for the chart's official repository in `components/base/pins.py`",
        )
        return
    pinned = [p for p in PINS if _repo(p.repository) == repo and p.chart == c.chart]
    if not pinned and repo in {_repo(p.repository) for p in PINS}:
        yield message(
            f"{subject} is not one of the pins in `components/base/pins.py`",
            "every third-party chart is pinned in one place so the review tool and this policy "
            "see the same version the program installs.",
            "add a ChartPin for it and install it with `resources.release` or `resources.chart`",
        )
    elif pinned and c.version not in {p.version for p in pinned}:
        yield message(
            f"{subject} installs version {c.version}, but `components/base/pins.py` pins "
            f"{', '.join(sorted(p.version for p in pinned))}",
            "a version beside the pin bypasses the reviewed bump.",
            "install the pinned version, or bump the pin (and the values tested against it)",
        )


# --- images ----------------------------------------------------------------------------------

POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


def image_problem(ref: str, tag_required: bool) -> str | None:
    """Why an image reference floats, or None when it is pinned (a tag or a digest)."""
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag == "latest":
        return "uses the `latest` tag"
    if tag is None and tag_required:
        return "has no tag (Kubernetes pulls `latest`)"
    return None


def _pod_images(props: Any) -> Iterator[tuple[str, str]]:
    for path, value in walk(props):
        if path and path[-1] == "image" and isinstance(value, str):
            parents = set(path[:-2])
            if parents & {"containers", "initContainers", "ephemeralContainers"}:
                yield dotted(path), value


def _chart_images(values: Any) -> Iterator[tuple[str, str]]:
    for path, value in walk(values):
        key = path[-1] if path else ""
        if isinstance(value, str) and (key == "image" or key.endswith("Image")):
            if value.endswith(":latest"):
                yield dotted(path), value
        elif is_mapping(value) and key.lower().endswith("image"):
            tag = dig(value, "tag")
            repository = dig(value, "repository")
            if tag == "latest" or (isinstance(repository, str) and repository.endswith(":latest")):
                yield dotted(path), "latest"


WHY_LATEST = (
    "a floating tag runs whatever was pushed last: nodes drift apart, a restart is an "
    "unreviewed upgrade and a rollback has nothing to go back to."
)


def check_images(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    if excepted(config, resource.name):
        return
    c = chart(resource)
    if c is not None:
        for path, _ in _chart_images(c.values):
            yield message(
                f"{c.where()} sets values.{path} to the `latest` tag",
                WHY_LATEST,
                "leave the tag to the pinned chart version, or pin an exact tag or digest",
            )
        return
    kind = k8s_type(resource.resource_type)
    if kind is None or kind[1] not in POD_KINDS:
        return
    for path, ref in _pod_images(resource.props):
        problem = image_problem(ref, tag_required=True)
        if problem:
            yield message(
                f"{where(resource)} image at {path} {problem}",
                WHY_LATEST,
                "pin an exact tag or a digest (`@sha256:...`) from stack config",
            )


RULES = [
    Rule(
        name="helm-chart-pinned",
        description="Every Helm chart is a pin from `components/base/pins.py`: an exact "
        "version from an allowed repository (a `helm.v4.Chart` judged by what it renders).",
        kind=RESOURCE,
        check=check_chart,
        remediation="Install charts only through a ChartPin in components/base/pins.py.",
        config={
            "extraRepositories": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Repositories allowed beside those of the pins.",
                "default": [],
            },
            "exceptions": exceptions_schema("Helm release name"),
        },
        severity="high",
        exception_key="Helm release name",
    ),
    Rule(
        name="no-latest-images",
        description="No container image is `latest` or untagged.",
        kind=RESOURCE,
        check=check_images,
        remediation="Pin images to an exact tag or digest.",
        config={"exceptions": exceptions_schema("Pulumi resource name")},
        severity="medium",
        exception_key="Pulumi resource name",
    ),
]
