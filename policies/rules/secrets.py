"""No secret-looking value in an input that is not meant to hold one: a literal under a key
named like a password, token or key, a URL carrying credentials (`user:pass@`, `?token=`), a
private key, or a well-known token format.

The analyzer receives secrets as plaintext without any marker, so the rule cannot ask whether
a value is a Pulumi secret. It exempts instead the inputs whose job is to hold secrets (a
Kubernetes Secret's data, a provider's credentials, the TLS provider's keys) and treats every
other input as one that ends up in plain sight (Helm values are stored in the release, CRD specs
are readable by anyone who can list them). Messages name the input, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules.base import (
    RESOURCE,
    Rule,
    dotted,
    excepted,
    exceptions_schema,
    message,
    walk,
)

# type -> top-level inputs that exist to hold secrets.
SECRET_INPUTS: dict[str, frozenset[str]] = {
    "kubernetes:core/v1:Secret": frozenset({"data", "stringData"}),
    "pulumi:providers:kubernetes": frozenset({"kubeconfig"}),
    "pulumi:providers:digitalocean": frozenset({"token", "spacesAccessId", "spacesSecretKey"}),
    "tls:index/certRequest:CertRequest": frozenset({"privateKeyPem"}),
    "tls:index/locallySignedCert:LocallySignedCert": frozenset({"caPrivateKeyPem", "caCertPem"}),
    "tls:index/selfSignedCert:SelfSignedCert": frozenset({"privateKeyPem"}),
}

_SECRET_SUFFIXES = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "secretkey",
    "privatekey",
    "accesskey",
    "signingkey",
    "credential",
    "credentials",
    "webhookurl",
)
# Keys that name or point at a secret rather than hold one.
_REFERENCE_SUFFIXES = ("name", "ref", "file", "path", "enabled", "type", "mode")
_REFERENCE_VALUE = re.compile(r"^(\$\{[^}]+\}|\$\([^)]+\)|\{\{.*\}\}|secret:\S+|/\S*)$")
# Under a key ending in `secret` (`credentialsSecret`), an object name is a reference.
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a URL with credentials", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)),
    (
        "a URL with a credential parameter",
        re.compile(
            r"https?://\S*[?&](api[_-]?key|apikey|token|access[_-]?token|auth|password|secret|"
            r"sig|signature|key|routing[_-]?key)=[^&\s]+",
            re.I,
        ),
    ),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a DigitalOcean token", re.compile(r"\bdo[opr]_v1_[0-9a-f]{64}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("an AWS access key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Slack token or webhook", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/")),
)


def _normalized(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def secret_named(key: str, value: str) -> bool:
    """Whether `value` under `key` is a secret literal: the key names a secret (`adminPassword`,
    `api_key`) and is no reference to one (`existingSecret`, `secretName`, `tokenSecretRef`,
    `passwordFile`), and the value is no reference (`${ENV}`, `secret:name:key`, a path)."""
    k = _normalized(key)
    if k.startswith("existing") or k.endswith(_REFERENCE_SUFFIXES):
        return False
    if not k.endswith(_SECRET_SUFFIXES) or _REFERENCE_VALUE.match(value):
        return False
    return not (k.endswith("secret") and _OBJECT_NAME.match(value))


def findings(resource_type: str, props: Any) -> Iterator[tuple[str, str]]:
    """(input path, what it looks like) for every secret-looking literal."""
    exempt = SECRET_INPUTS.get(resource_type, frozenset())
    for path, value in walk(props):
        if not isinstance(value, str) or not value.strip() or path[0] in exempt:
            continue
        key = next((p for p in reversed(path) if not p.isdigit()), "")
        if secret_named(key, value.strip()):
            yield dotted(path), f"a literal under the secret-named key `{key}`"
            continue
        for what, pattern in VALUE_PATTERNS:
            if pattern.search(value):
                yield dotted(path), what
                break


def check(resource: Any, config: Mapping[str, Any]) -> Iterator[str]:
    for path, what in findings(resource.resource_type, resource.props):
        if excepted(config, f"{resource.name}:{path}"):
            continue
        yield message(
            f"{resource.resource_type} {resource.name}: input `{path}` holds {what} (value not "
            "shown)",
            "outside a Secret's data it is stored and shown in plain text: Helm release "
            "records, object specs, previews, CI logs and PR comments.",
            "store it with `pulumi config set --secret`, put it in a Kubernetes Secret, and "
            "pass a reference (existingSecret, secretKeyRef, `*_file`, `${ENV}` expansion)",
        )


RULES = [
    Rule(
        name="no-plaintext-secrets",
        description="No secret-looking value (token, password, key, URL with credentials) in "
        "an input that is not a secret.",
        kind=RESOURCE,
        check=check,
        remediation="Keep secrets in Kubernetes Secrets and reference them.",
        config={"exceptions": exceptions_schema("<Pulumi resource name>:<input path>")},
        severity="critical",
        exception_key="<Pulumi resource name>:<input path>",
    )
]
