"""Reading back a plan folder that `tools.plan` wrote: its `resources.json`, checked for the
shape the policy run and the review both rely on, with one message per way it can be wrong
(each naming the file, and the line and column of a JSON error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESOURCES = "resources.json"
# Every resource record carries these (tools.engine.Resource.to_json).
FIELDS: dict[str, type] = {"urn": str, "type": str, "name": str, "inputs": dict}


class PlanFolderError(Exception):
    """A folder that is not a readable plan; the message says which file and why."""


def stack_of(urn: str) -> str:
    return urn.split("::")[0].removeprefix("urn:pulumi:")


def read_resources(directory: Path, stack: str = "STACK") -> list[dict[str, Any]]:
    """The resource records of the plan in `directory`, all of one stack. `stack` is only
    named in the hint for writing a missing plan."""
    path = directory / RESOURCES
    if not directory.is_dir():
        raise PlanFolderError(f"{directory}: no such directory (a folder written by tools.plan)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFolderError(
            f"{directory}: no {RESOURCES}; write one with "
            f"`python -m tools.plan {stack} --out {directory}`"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanFolderError(f"{path}: {error}") from None
    except json.JSONDecodeError as error:
        raise PlanFolderError(
            f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}"
        ) from None
    if not isinstance(data, list):
        raise PlanFolderError(f"{path}: expected a list of resources (a tools.plan output)")
    for i, r in enumerate(data):
        bad = [
            k for k, t in FIELDS.items() if not isinstance(r, dict) or not isinstance(r.get(k), t)
        ]
        if bad:
            raise PlanFolderError(
                f"{path}: resource {i} lacks {', '.join(bad)} (each needs urn, type, name and "
                "inputs, as tools.plan writes them)"
            )
    stacks = sorted({stack_of(r["urn"]) for r in data})
    if len(stacks) > 1:
        raise PlanFolderError(f"{path}: resources of several stacks ({', '.join(stacks)})")
    return data
