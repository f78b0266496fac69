"""Schema checks for the manifests the program authors, shared by every layer's tests.

- `validate_k8s(obj)`: core Kubernetes objects, `kubernetes-validate` in strict mode (unknown
  fields rejected) against Kubernetes `K8S_VERSION`.
- `validate_istio(obj)`: Istio custom resources against the openAPIV3Schema of the pinned Istio
  CRDs (`tests/schemas/istio-crds.yaml`, copied from Istio 1.30.3 `crd-all.gen.yaml`).
- `validate_crd(obj)`: any custom resource whose CRD is in `tests/schemas/*.yaml` (Istio,
  cert-manager, and whatever other layers copy there).

CRD schemas are closed before use: wherever a schema lists `properties` and states neither
`additionalProperties` nor `x-kubernetes-preserve-unknown-fields`, unknown fields are rejected,
as the API server prunes/refuses them. A misspelled field is therefore a test failure, not a
silently dropped setting. Every check raises `SchemaError` (an AssertionError) naming the object,
the field path and the problem. Nothing here reads outside `tests/`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

K8S_VERSION = "1.34"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

__all__ = [
    "K8S_VERSION",
    "SchemaError",
    "validate_crd",
    "validate_istio",
    "validate_k8s",
]


class SchemaError(AssertionError):
    """A manifest that the API server would refuse (or silently prune)."""


def normalize(value: Any) -> Any:
    """Integral floats back to ints: the mock engine reports every number as a float, the real
    provider sends integers (`port: 443.0` is `port: 443` on the wire)."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('apiVersion')}/{obj.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


# --- core Kubernetes ----------------------------------------------------------------------------

# kubernetes-validate reads and parses its schema files (the kind's and 2 MB of shared
# definitions) on every call: 7 ms of the 8 a validation takes. The files are the installed
# package's and only read, so each is parsed once per session (validation does not change them).
if not hasattr(kubernetes_validate.utils.schema_contents, "cache_info"):
    kubernetes_validate.utils.schema_contents = functools.cache(
        kubernetes_validate.utils.schema_contents
    )


def validate_k8s(obj: dict[str, Any], version: str = K8S_VERSION) -> None:
    """Strict validation of a core Kubernetes object (Namespace, Service, PDB, Secret, ...)."""
    data = normalize(obj)
    try:
        kubernetes_validate.validate(data, version, strict=True)
    except jsonschema.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path) or "(root)"
        raise SchemaError(f"{_where(obj)}: {path}: {e.message}") from None
    except Exception as e:  # schema not found: unknown apiVersion/kind
        raise SchemaError(f"{_where(obj)}: {e}") from None
    if not (obj.get("metadata") or {}).get("name"):
        raise SchemaError(f"{_where(obj)}: metadata.name is required")


# --- custom resources -----------------------------------------------------------------------------

# What the API server accepts at the top of every custom resource besides the CRD's own schema.
_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": False,
}


def close(schema: Any) -> Any:
    """Copy of `schema` with `additionalProperties: false` wherever `properties` are given and
    neither `additionalProperties` nor `x-kubernetes-preserve-unknown-fields` is set."""
    if isinstance(schema, list):
        return [close(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: close(v) if k != "properties" else {p: close(s) for p, s in v.items()}
        for k, v in schema.items()
    }
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed JSON schema, for every served version of every CRD file."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                props = schema.setdefault("properties", {})
                api_version = f"{spec['group']}/{version['name']}"
                props["apiVersion"] = {"type": "string", "enum": [api_version]}
                props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
                props["metadata"] = _OBJECT_META
                schema["required"] = sorted(
                    {*schema.get("required", []), "apiVersion", "kind", "metadata"}
                )
                closed = close(schema)
                if spec.get("scope") == "Cluster":
                    closed["properties"]["metadata"] = {
                        **_OBJECT_META,
                        "not": {"required": ["namespace"]},
                    }
                found[(api_version, spec["names"]["kind"])] = closed
    return found


@functools.cache
def _crd_validator(key: tuple[str, str]) -> jsonschema.Draft202012Validator | None:
    """One validator per stored CRD schema, reused: a new one per object spent 6.5 of the 6.6 ms
    a validation took resolving the schema again."""
    schema = _crds().get(key)
    return None if schema is None else jsonschema.Draft202012Validator(schema)


def validate_crd(obj: dict[str, Any]) -> None:
    """Validate a custom resource against its stored CRD schema, unknown fields rejected."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    validator = _crd_validator(key)  # type: ignore[arg-type]
    if validator is None:
        raise SchemaError(f"{_where(obj)}: no stored CRD serves {key[0]} {key[1]}")
    errors = sorted(validator.iter_errors(normalize(obj)), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors
        ]
        raise SchemaError(f"{_where(obj)}:\n  " + "\n  ".join(lines))


def validate_istio(obj: dict[str, Any]) -> None:
    """Validate an Istio custom resource (`*.istio.io`) against the pinned Istio 1.30.3 CRDs."""
    group = str(obj.get("apiVersion", "")).split("/")[0]
    if not group.endswith("istio.io"):
        raise SchemaError(f"{_where(obj)}: not an Istio API group")
    validate_crd(obj)
