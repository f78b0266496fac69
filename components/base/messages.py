"""pydantic's validation errors in the words of a stack file: the key path as written
(`services[0].ports`), the bad value, and what is allowed, without Python type names
(`Tuple should have at least 1 item`, `instance of MeshNamespace`). `components/config.py`
turns every `ValidationError` of a stack into `Problem`s here. Pure: no Pulumi."""

from __future__ import annotations

import types
import typing
from typing import Any, get_args

from pydantic import ValidationError

from components.base.model import MISSING, ConfigModel, Problem


def _optional_member(annotation: Any) -> Any:
    """`X | None` -> X (the annotation itself when it is not an optional)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if members else annotation
    return annotation


def model_at(root: type[ConfigModel], loc: tuple[Any, ...]) -> type[ConfigModel] | None:
    """The model a stack file writes at `loc` under `root` (list indexes step into items)."""
    annotation: Any = root
    for part in loc:
        annotation = _optional_member(annotation)
        if isinstance(part, int):
            items = get_args(annotation)
            if not items:
                return None
            annotation = items[0]
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, ConfigModel)):
            return None
        fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
        if part not in fields:
            return None
        annotation = fields[part].annotation
    annotation = _optional_member(annotation)
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return annotation
    return None


def allowed_keys(root: type[ConfigModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a stack file may use at `loc`, to tell the user what is allowed."""
    model = model_at(root, loc)
    return sorted(f.alias or n for n, f in model.model_fields.items()) if model else []


def key_path(loc: tuple[Any, ...]) -> str:
    """('services', 0, 'ports') -> 'services[0].ports'."""
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts[-1] = f"{parts[-1]}[{p}]" if parts else f"[{p}]"
        else:
            parts.append(str(p))
    return ".".join(parts)


def not_a_string(value: Any) -> str:
    """YAML turns an unquoted `1.30` into the number 1.3 and `yes` into true: say to quote it."""
    if isinstance(value, bool):
        return (
            "must be a string: YAML reads an unquoted true/false/yes/no/on/off as a boolean; "
            "write it quoted"
        )
    if isinstance(value, int | float):
        text = repr(value)
        hint = (
            f"must be a string: YAML read the unquoted {text} as a number; "
            f'write it quoted, "{text}"'
        )
        if isinstance(value, float) and len(text.partition(".")[2]) == 1:
            hint += f' (or "{text}0" if that is what you wrote: YAML drops the trailing zero)'
        return hint
    return "must be a string"


# pydantic error types -> the words a stack file's author needs.
_PLAIN: dict[str, str] = {
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number (an integer)",
    "int_parsing": "must be a whole number (an integer)",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
}


def message(root: type[ConfigModel], error: Any, value: Any) -> str:
    """What is allowed where `error` (one of `ValidationError.errors()`) happened."""
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"unknown key; allowed keys here: {', '.join(allowed_keys(root, loc[:-1]))}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = allowed_keys(root, loc)
        return f"must be a mapping with keys: {', '.join(keys)}" if keys else "must be a mapping"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length" if kind == "too_short" else "max_length")
        word = "at least" if kind == "too_short" else "at most"
        return f"must list {word} {bound} item{'' if bound == 1 else 's'}"
    if kind == "string_type":
        return not_a_string(value)
    if kind in _PLAIN:
        return _PLAIN[kind]
    text = str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return text.replace("Input should be", "must be one of")
    return text.replace("Input should be", "must be")


def problems(root: type[ConfigModel], error: ValidationError) -> list[Problem]:
    """Every error of a stack's validation as a `Problem` naming its key path."""
    out = []
    for e in error.errors():
        value = MISSING if e["type"] == "missing" else e.get("input", MISSING)
        out.append(Problem(key_path(tuple(e["loc"])) or "(stack)", value, message(root, e, value)))
    return out
