"""The mesh root CA an export, the program or a config backup names, compared by
fingerprint: a rebuild must keep the root every workload trusts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tools.recovery.state import (
    CACERTS,
    ROOT_CERT_KEY,
    STATE_ROOT,
    RecoverInputError,
    plaintext,
    wire_plaintext,
)

# --- the mesh root CA -----------------------------------------------------------------------


def first_pem(text: str) -> str:
    """The first certificate of a PEM bundle (root-cert.pem holds the root, then any roots
    trusted during a rotation), or the text itself when it holds no PEM block."""
    end = "-----END CERTIFICATE-----"
    if "-----BEGIN CERTIFICATE-----" in text and end in text:
        return text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)] + "\n"
    return text.strip() + "\n"


PLACEHOLDER_FINGERPRINT = "sha256-text:"


def read_root_cert(path: Path) -> str:
    """The escrowed `root-cert.pem` given as `--root-cert`: a PEM certificate, or a clear
    error (exit 2) naming the file, never a traceback or a mismatch that only looks like a
    finding (a DER file, or the root's key given by mistake)."""
    if not path.is_file():
        raise RecoverInputError(f"--root-cert {path}: no such file")
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise RecoverInputError(
            f"--root-cert {path}: not text; expected the PEM certificate root-cert.pem "
            "(-----BEGIN CERTIFICATE-----), not DER"
        ) from None
    if fingerprint(first_pem(text)).startswith(PLACEHOLDER_FINGERPRINT):
        raise RecoverInputError(
            f"--root-cert {path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
            "expected the escrowed root-cert.pem, not root-key.pem"
        )
    return text


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER, as `openssl x509 -fingerprint -sha256` shows it; for a
    text that is not a certificate (the offline engine's placeholders), of the text."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    except ValueError:
        return PLACEHOLDER_FINGERPRINT + hashlib.sha256(pem.strip().encode()).hexdigest()
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def cacerts_object(resources: Iterable[dict[str, Any]], open_: Any) -> dict[str, Any] | None:
    for r in resources:
        if r.get("type") != "kubernetes:core/v1:Secret":
            continue
        meta = (r.get("inputs") or {}).get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == CACERTS:
            return open_((r.get("inputs") or {}).get("stringData"))
    return None


def _root_of(data: Any) -> str | None:
    """The fingerprint of a `cacerts` Secret's root, or None when it holds none."""
    if not isinstance(data, dict) or not isinstance(data.get("root-cert.pem"), str):
        return None
    return fingerprint(first_pem(data["root-cert.pem"]))


def export_root_fingerprint(doc: dict[str, Any]) -> str | None:
    return _root_of(cacerts_object(doc["deployment"]["resources"], plaintext))


def program_root_fingerprint(program: Any) -> str | None:
    """The root the program writes into `cacerts` for the stack's current config."""
    entries = [{"type": r.type, "inputs": r.wire_inputs} for r in program.resources]
    return _root_of(cacerts_object(entries, wire_plaintext))


def state_root_fingerprint(doc: dict[str, Any]) -> str | None:
    """The root the export keeps in state (a tier that allows it, without meshCaRootCert), or
    None when the stack's root comes from config."""
    for r in doc["deployment"]["resources"]:
        if r.get("type") == STATE_ROOT:
            cert = plaintext((r.get("outputs") or {}).get("certPem"))
            return fingerprint(first_pem(cert)) if isinstance(cert, str) else "unreadable"
    return None


def config_value(config: dict[str, Any] | None, key: str) -> str | None:
    entry = (config or {}).get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


def expected_root(
    doc: dict[str, Any],
    stack: str,
    program: Any,
    root_pem: str | None,
    config: dict[str, Any] | None,
    have: str | None,
) -> tuple[str | None, str]:
    """The root the stack trusts, and where it comes from. In order: the PEM given (the
    escrowed root-cert.pem); the config backup's meshCaRootCert; the export's own state root
    (a stack that keeps its root in state); for an offline export (placeholder root), the
    program's placeholder. A real root that comes from config cannot be known offline: the
    engine sees only a placeholder for the encrypted value, so that is bad input (exit 2)."""
    if root_pem is not None:
        return fingerprint(first_pem(root_pem)), "--root-cert"
    configured = config_value(config, ROOT_CERT_KEY)
    if configured is not None:
        return fingerprint(first_pem(configured)), f"--config {ROOT_CERT_KEY}"
    in_state = state_root_fingerprint(doc)
    if in_state is not None:
        return in_state, "the export's state root"
    if have is not None and not have.startswith(PLACEHOLDER_FINGERPRINT):
        raise RecoverInputError(
            f"stack {stack} takes its mesh root CA from config ({ROOT_CERT_KEY}), which the "
            "offline program cannot read: pass --root-cert <escrowed root-cert.pem>"
        )
    return program_root_fingerprint(program), "stack config"
