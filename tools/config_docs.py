"""The README's table of config keys, rendered from the models and profiles themselves, so the
documentation cannot drift from what the program accepts.

`python -m tools.config_docs` prints it; `--write` replaces it in README.md (a test checks that
README holds the current table)."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from typing import Any

from pydantic import SecretStr

from components import config
from components.base.model import ConfigModel
from tools.engine import ROOT

START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"
ENVS = config.ENVIRONMENTS


def _model_of(annotation: Any) -> type[ConfigModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found:
                return found
    return None


def _lookup(profile: dict[str, Any], path: list[str]) -> Any:
    node: Any = profile
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _show(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}…`"


def rows(model: type[ConfigModel] = config.PlatformConfig, prefix: list[str] | None = None):
    prefix = prefix or []
    profiles = {env: config.profile(env) for env in ENVS}
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = [*prefix, key]
        nested = _model_of(field.annotation)
        if nested is not None and any(isinstance(_lookup(profiles[e], path), dict) for e in ENVS):
            yield from rows(nested, path)
            continue
        if field.annotation is SecretStr or _is_optional_secret(field.annotation):
            cells = [f"secret (`--secret`), {config.secret_requirement(name, env)}" for env in ENVS]
        else:
            cells = []
            for env in ENVS:
                value = _lookup(profiles[env], path)
                if path == ["environment"]:
                    cells.append(f"**required**: `{env}`")
                elif value is None and field.is_required():
                    cells.append("**required**")
                elif value is None and not field.is_required():
                    cells.append(_show(field.default) if field.default not in (None, ()) else "—")
                else:
                    cells.append(_show(value))
        yield ".".join(path), cells


def _is_optional_secret(annotation: Any) -> bool:
    return SecretStr in typing.get_args(annotation)


def render() -> str:
    lines = [
        "| key (`service-mesh:` …) | " + " | ".join(ENVS) + " |",
        "| --- |" + " --- |" * len(ENVS),
    ]
    for key, cells in rows():
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def current_readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.config_docs",
        description="Print README's table of config keys, generated from the config models.",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="replace the table between the config-table markers in README.md instead",
    )
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        path = ROOT / "README.md"
        text = path.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
