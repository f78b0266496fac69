"""Istio control-plane revisions (istiod chart `revision`/`revisionTags`, base chart
`defaultRevision`) stay consistent through a canary upgrade:

- every tag has one holder: the istiod chart's `revisionTags` or a tag webhook the program
  authors (`istio-revision-tag-<tag>`, labelled `istio.io/tag`), and an istiod without a
  revision holds `default` itself; two holders are two webhooks claiming the same namespaces
  (and "already exists" when a tag moves between two Pulumi resources);
- the base chart's `defaultRevision` (the validating webhook's istiod) is the revision that holds
  `default`, or an installed revision when no tag is `default` (istio#58578: nothing checks it);
- gateways and namespaces select a revision or tag that is installed, and every tag points at
  an installed revision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.base import mesh
from policies.rules.base import (
    CORE,
    STACK,
    Rule,
    dig,
    excepted,
    exceptions_schema,
    items,
    labels,
    message,
    obj_name,
    of_kind,
)
from policies.rules.helm import Chart, charts

DEFAULT = "default"
TAG_LABEL = "istio.io/tag"
WEBHOOKS = ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")


def revision(c: Chart) -> str:
    return str(dig(c.values, "revision", default=""))


def tags(c: Chart) -> list[str]:
    return [str(t) for t in items(dig(c.values, "revisionTags"))]


@dataclass(frozen=True)
class TagHolder:
    """One rendering of a revision tag: by an istiod release's `revisionTags`, by a tag
    webhook the program authors (`istio-revision-tag-<tag>`), or (for `default`) an istiod
    without a revision, which is the default revision itself."""

    tag: str
    revision: str
    owner: str  # for messages
    urn: str


def tag_holders(resources: Sequence[Any]) -> list[TagHolder]:
    out = []
    for c in charts(resources, "istiod"):
        for tag in tags(c):
            out.append(
                TagHolder(
                    tag, revision(c) or DEFAULT, f"istiod release {c.release}", c.resource.urn
                )
            )
        if not revision(c):
            out.append(
                TagHolder(
                    DEFAULT, DEFAULT, f"istiod release {c.release} (no revision)", c.resource.urn
                )
            )
    for webhook in of_kind(resources, *WEBHOOKS):
        found = labels(webhook)
        if TAG_LABEL in found:
            rev = str(found.get(mesh.REVISION_LABEL, ""))
            out.append(
                TagHolder(str(found[TAG_LABEL]), rev, f"webhook {obj_name(webhook)}", webhook.urn)
            )
    return out


def check_default(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    istiods = charts(resources, "istiod")
    holders = tag_holders(resources)
    if not istiods and not holders:
        return
    by_tag: dict[str, list[TagHolder]] = {}
    for h in holders:
        by_tag.setdefault(h.tag, []).append(h)
    for tag, found in by_tag.items():
        if len(found) < 2 or excepted(config, tag):
            continue
        owners = ", ".join(f"{h.owner} -> {h.revision}" for h in found)
        why = (
            "both render the default injection webhook: which istiod injects a pod is then "
            "decided by webhook order, and proxies end up mixed (istio#48643)."
            if tag == DEFAULT
            else "two renderings of one tag webhook overlap (IST0139), and as two Pulumi "
            "resources the tag move fails with 'already exists'."
        )
        for h in found:
            yield (
                h.urn,
                message(
                    f"revision tag {tag} has {len(found)} holders ({owners})",
                    why,
                    "give each tag one holder (`istio.revisions[].tags`); move it in one "
                    "`pulumi up`, which updates the one tag webhook in place",
                ),
            )
    bases = charts(resources, "base")
    for c in bases[1:]:
        yield (
            c.resource.urn,
            message(
                f"{len(bases)} Istio base charts are installed",
                "the base chart owns the CRDs and the default validator; two releases fight "
                "over them.",
                "install one base chart (upgrade it first in a canary upgrade)",
            ),
        )
    if not bases or excepted(config, "defaultRevision"):
        return
    base = bases[0]
    pointed = str(dig(base.values, "defaultRevision", default=DEFAULT))
    installed = {revision(c) or DEFAULT for c in istiods}
    defaults = by_tag.get(DEFAULT, [])
    if defaults:
        wanted = defaults[0].revision
        if pointed != wanted:
            yield (
                base.resource.urn,
                message(
                    f"{base.where()} sets defaultRevision {pointed}, but the `default` tag is held "
                    f"by revision {wanted}",
                    "the default validator then asks another istiod than the one injecting "
                    "default workloads (istio#58578); during an upgrade the wrong version "
                    "validates config.",
                    f"set the base chart's defaultRevision to {wanted} in the same change that "
                    "moves the tag",
                ),
            )
    elif pointed not in installed:
        yield (
            base.resource.urn,
            message(
                f"{base.where()} sets defaultRevision {pointed}, which no istiod release installs "
                f"(installed: {', '.join(sorted(installed)) or 'none'})",
                "the default validating webhook then points at an istiod that does not exist.",
                "set defaultRevision to the revision in use (`istio.revisions`)",
            ),
        )


def check_references(
    resources: Sequence[Any], config: Mapping[str, Any]
) -> Iterator[tuple[str | None, str]]:
    istiods = charts(resources, "istiod")
    if not istiods:
        return
    holders = tag_holders(resources)
    known = {revision(c) for c in istiods if revision(c)} | {h.tag for h in holders}
    has_default = any(h.tag == DEFAULT for h in holders)
    why = (
        "a pod selecting a revision nobody installs gets no sidecar (or, for a gateway, no "
        "proxy config), and fails open or not at all."
    )
    for gateway in charts(resources, "gateway"):
        wanted = str(dig(gateway.values, "revision", default=""))
        ok = wanted in known if wanted else has_default
        if not ok and not excepted(config, gateway.release):
            yield (
                gateway.resource.urn,
                message(
                    f"{gateway.where()} uses revision {wanted or '(default)'}, which no istiod "
                    f"installs (revisions and tags: {', '.join(sorted(known))})",
                    why,
                    "set the gateway's revision to `istio.revisionTag` or an installed revision",
                ),
            )
    revisions = {revision(c) or DEFAULT for c in istiods}
    for h in holders:
        if h.revision not in revisions and not excepted(config, h.tag):
            yield (
                h.urn,
                message(
                    f"revision tag {h.tag} ({h.owner}) points at revision {h.revision}, which no "
                    f"istiod installs (revisions: {', '.join(sorted(revisions))})",
                    "every pod of a namespace on that tag would be refused or left without a "
                    "sidecar: the tag's webhook calls an istiod that does not exist.",
                    "point the tag at an installed revision (`istio.revisions[].tags`), or install "
                    "the revision first",
                ),
            )
    for ns in of_kind(resources, CORE, "Namespace"):
        found = labels(ns)
        wanted = found.get(mesh.REVISION_LABEL)
        name = obj_name(ns)
        if wanted is not None and str(wanted) not in known and not excepted(config, name):
            yield (
                ns.urn,
                message(
                    f"namespace {name} selects revision {wanted}, which no istiod installs",
                    why,
                    "label the namespace with `istio.revisionTag` (or an installed revision)",
                ),
            )
        elif found.get("istio-injection") == "enabled" and not has_default:
            if not excepted(config, name):
                yield (
                    ns.urn,
                    message(
                        f"namespace {name} uses istio-injection=enabled, but no istiod holds the "
                        "`default` tag",
                        why + " `istio-injection` also overrides `istio.io/rev` labels.",
                        f"label it {mesh.REVISION_LABEL}=<tag> instead of istio-injection",
                    ),
                )


RULES = [
    Rule(
        name="istio-default-revision",
        description="At most one istiod holds the `default` tag, each tag has one owner, and "
        "the base chart's defaultRevision is the revision holding `default`.",
        kind=STACK,
        check=check_default,
        remediation="Move tags and defaultRevision together, in one `pulumi up`.",
        config={"exceptions": exceptions_schema("tag name, or defaultRevision")},
        severity="high",
        exception_key="tag name, or `defaultRevision`",
    ),
    Rule(
        name="istio-revision-references",
        description="Gateways and namespaces select an installed Istio revision or tag.",
        kind=STACK,
        check=check_references,
        remediation="Point gateways and namespaces at `istio.revisionTag`.",
        config={"exceptions": exceptions_schema("Helm release name, or namespace")},
        severity="high",
        exception_key="Helm release name, or namespace",
    ),
]
