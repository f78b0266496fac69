"""The declared service graph as the plan enforces it, and a Mermaid picture of two versions of
it with the edges a change adds or removes marked (GitHub renders Mermaid in a PR comment).

Read from the plan, not from config, so a base and a head plan compare without re-reading either
stack file: each `allow-<service>` AuthorizationPolicy of a mesh namespace is a service, each of
its rules' principals a caller (the ingress gateway is the Internet, with the public Gateway's
hosts), and each MESH_EXTERNAL ServiceEntry an external host the namespace may reach (through
the egress gateway when its policy admits the host). A caller's service account names its node
(`namespace/account`), which is the service's own name by the project's convention; the
`-primary` copy Flagger needs for a canary is the same service. Pure: no Pulumi import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

AUTHZ = "kubernetes:security.istio.io/v1:AuthorizationPolicy"
SERVICE_ENTRY = "kubernetes:networking.istio.io/v1:ServiceEntry"
GATEWAY = "kubernetes:networking.istio.io/v1:Gateway"
INTERNET = "internet"
_PRINCIPAL = re.compile(r"^(?:[^/]+/)?ns/([^/]+)/sa/([^/]+)$")


def _platform_namespaces() -> frozenset[str]:
    from components.base import mesh
    from components.graph.model import RESERVED_NAMESPACES

    extra = {mesh.INGRESS_NAMESPACE, mesh.EGRESS_NAMESPACE}
    try:
        from components.traffic import names

        extra.add(names.FLAGGER_NAMESPACE)
    except ImportError:  # a checkout without the traffic layer
        pass
    return frozenset(RESERVED_NAMESPACES | extra)


def _special_principals() -> dict[str, tuple[str, str]]:
    """Principals that are not mesh services: node id -> label."""
    from components.base import mesh

    out = {mesh.INGRESS_PRINCIPAL: (INTERNET, "Internet")}
    try:
        from components.traffic import names

        out[names.LOADTESTER_PRINCIPAL] = ("flagger-loadtester", "Flagger load tester")
    except ImportError:
        pass
    return out


@dataclass
class Graph:
    """Nodes (id -> label) and edges (caller, callee, label)."""

    nodes: dict[str, str] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    hosts: list[str] = field(default_factory=list)  # public hosts of the ingress gateway


def _meta(record: Mapping[str, Any]) -> tuple[str, str]:
    meta = record["inputs"].get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def service_graph(resources: Iterable[Mapping[str, Any]]) -> Graph:
    resources = list(resources)
    platform = _platform_namespaces()
    special = _special_principals()
    from components.base.mesh import INGRESS_NAMESPACE as ingress_namespace

    g = Graph()
    policies = [r for r in resources if r["type"] == AUTHZ]
    names = {_meta(r) for r in policies}
    egress_hosts: set[str] = set()
    for r in policies:
        ns, name = _meta(r)
        spec = r["inputs"].get("spec") or {}
        if ns in platform:
            continue
        if name == "allow-nothing" or not name.startswith("allow-"):
            continue
        service = name.removeprefix("allow-")
        if service.endswith("-primary") and (ns, name.removesuffix("-primary")) in names:
            continue
        callee = f"{ns}/{service}"
        g.nodes[callee] = callee
        for rule in spec.get("rules") or []:
            for source in rule.get("from") or [{}]:
                src = source.get("source") or {}
                for principal in src.get("principals") or []:
                    if principal in special:
                        node, label = special[principal]
                    else:
                        m = _PRINCIPAL.match(principal)
                        node = label = f"{m.group(1)}/{m.group(2)}" if m else principal
                    g.nodes.setdefault(node, label)
                    g.edges.add((node, callee, ""))
                if src.get("notPrincipals") == ["*"]:
                    g.nodes.setdefault("plaintext", "plaintext clients")
                    g.edges.add(("plaintext", callee, "plaintext"))
    for r in policies:
        ns, name = _meta(r)
        spec = r["inputs"].get("spec") or {}
        if (
            ns in platform
            and (spec.get("selector") or {}).get("matchLabels", {}).get("istio") == "egressgateway"
        ):
            for rule in spec.get("rules") or []:
                for cond in rule.get("when") or []:
                    if cond.get("key") == "connection.sni":
                        egress_hosts.update(cond.get("values") or [])
    for r in resources:
        if r["type"] == SERVICE_ENTRY:
            ns, _ = _meta(r)
            spec = r["inputs"].get("spec") or {}
            if ns in platform or spec.get("location") != "MESH_EXTERNAL":
                continue
            group = f"ns:{ns}"
            g.nodes.setdefault(group, f"namespace {ns}")
            for host in spec.get("hosts") or []:
                g.nodes.setdefault(f"host:{host}", host)
                label = "egress gateway" if host in egress_hosts else "direct"
                g.edges.add((group, f"host:{host}", label))
        elif r["type"] == GATEWAY and _meta(r)[0] == ingress_namespace:
            for server in (r["inputs"].get("spec") or {}).get("servers") or []:
                g.hosts += [h for h in server.get("hosts") or [] if h not in g.hosts]
    if INTERNET in g.nodes and g.hosts:
        g.nodes[INTERNET] = "Internet: " + ", ".join(sorted(g.hosts))
    return g


def edge_changes(old: Graph, new: Graph) -> tuple[list, list, list]:
    """(kept, added, removed) edges, each sorted."""
    return (
        sorted(old.edges & new.edges),
        sorted(new.edges - old.edges),
        sorted(old.edges - new.edges),
    )


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'").replace("\n", " ") + '"'


def mermaid(old: Graph, new: Graph, limit: int = 15_000) -> tuple[str, str]:
    """A Mermaid flowchart of `new` with `old`'s removed edges and nodes drawn dashed, and a
    note. Beyond `limit` characters only the changed edges are drawn; beyond that again the
    first of them, and the note says what was left out."""
    kept, added, removed = edge_changes(old, new)
    note = ""
    text = _render(old, new, kept, added, removed)
    if len(text) > limit:
        note = f"unchanged edges ({len(kept)}) left out to fit the comment"
        text = _render(old, new, [], added, removed)
        shown_added, shown_removed = added, removed
        while len(text) > limit and (shown_added or shown_removed):
            shown_added = shown_added[: len(shown_added) * 3 // 4]
            shown_removed = shown_removed[: len(shown_removed) * 3 // 4]
            text = _render(old, new, [], shown_added, shown_removed)
        if (len(shown_added), len(shown_removed)) != (len(added), len(removed)):
            note += (
                f"; showing {len(shown_added)} of {len(added)} added and "
                f"{len(shown_removed)} of {len(removed)} removed edges"
            )
    return text, note


def _render(old: Graph, new: Graph, kept, added, removed) -> str:
    ids: dict[str, str] = {}

    def node(key: str) -> str:
        if key not in ids:
            ids[key] = f"n{len(ids)}"
        return ids[key]

    lines = ["flowchart LR"]
    edges = [(e, "kept") for e in kept] + [(e, "added") for e in added]
    edges += [(e, "removed") for e in removed]
    used = {k for (a, b, _), _ in edges for k in (a, b)}
    if not edges:
        used = set(new.nodes)
    for key in sorted(used):
        label = new.nodes.get(key) or old.nodes.get(key) or key
        cls = ""
        if key not in old.nodes and key in new.nodes and old.nodes:
            cls = ":::added"
        elif key not in new.nodes:
            cls = ":::removed"
        lines.append(f"  {node(key)}[{_quote(label)}]{cls}")
    styles = []
    for i, ((a, b, label), status) in enumerate(edges):
        text = label
        if status == "added":
            text = f"added {label}".strip()
            styles.append(f"  linkStyle {i} stroke:#1a7f37,stroke-width:3px")
        elif status == "removed":
            text = f"removed {label}".strip()
            styles.append(f"  linkStyle {i} stroke:#cf222e,stroke-dasharray:4")
        arrow = "-.->" if status == "removed" else ("==>" if status == "added" else "-->")
        middle = f"|{_quote(text)}|" if text else ""
        lines.append(f"  {node(a)} {arrow}{middle} {node(b)}")
    lines += styles
    lines.append("  classDef added fill:#dafbe1,stroke:#1a7f37")
    lines.append("  classDef removed fill:#ffebe9,stroke:#cf222e,stroke-dasharray:4")
    return "\n".join(lines)


def graph_json(old: Graph, new: Graph) -> dict[str, Any]:
    kept, added, removed = edge_changes(old, new)

    def edge(e: tuple[str, str, str], status: str) -> dict[str, str]:
        return {"from": e[0], "to": e[1], "label": e[2], "status": status}

    return {
        "nodes": {k: v for k, v in sorted({**old.nodes, **new.nodes}.items())},
        "addedNodes": sorted(set(new.nodes) - set(old.nodes)),
        "removedNodes": sorted(set(old.nodes) - set(new.nodes)),
        "edges": [edge(e, "kept") for e in kept]
        + [edge(e, "added") for e in added]
        + [edge(e, "removed") for e in removed],
    }
