"""Match conditions of a route: one block (`RouteMatch`) holds when all of its conditions do
(URI prefix, method, headers exact/prefix/regex, a cookie); a route's blocks are ORed. A cookie
is matched as Istio and Flagger can match it, with a regex on the `cookie` header. Pure: no
Pulumi.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from components.base.model import ConfigModel

_URI = re.compile(r"^/[A-Za-z0-9._~!$&'()+,;=:@%/-]*$")
_HEADER = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_COOKIE = re.compile(r"^([A-Za-z0-9!#$%&'*+.^_`|~-]+)=([^;\s]*)$")


def check_uri(value: str | None) -> str | None:
    if value is not None and not _URI.match(value):
        raise ValueError(
            "must start with '/' and contain no wildcard, query or space, e.g. '/api/orders'"
        )
    return value


def check_method(value: str | None) -> str | None:
    # Imported here: the graph's model imports this module.
    from components.graph.model import HTTP_METHODS

    if value is not None and value not in HTTP_METHODS:
        raise ValueError(f"unknown HTTP method {value!r}; allowed: {', '.join(HTTP_METHODS)}")
    return value


def cookie_regex(name: str, value: str) -> str:
    """An RE2 full match of the `cookie` header containing `name=value` as one cookie,
    wherever it is in the list (cookies are separated by '; ')."""
    return f"^(.*?;\\s*)?({re.escape(name)}={re.escape(value)})(;.*)?$"


class StringMatch(ConfigModel):
    """Exactly one of exact, prefix or regex (RE2, matched against the whole value)."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> StringMatch:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) != 1:
            raise ValueError("set exactly one of exact, prefix or regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as error:
                raise ValueError(f"regex {self.regex!r} does not compile: {error}") from None
        return self

    @property
    def kind(self) -> str:
        return (
            "exact" if self.exact is not None else "prefix" if self.prefix is not None else "regex"
        )

    @property
    def value(self) -> str:
        return str(self.exact if self.exact is not None else self.prefix or self.regex or "")

    def istio(self) -> dict[str, str]:
        return {self.kind: self.value}


class RouteMatch(ConfigModel):
    """One match block: all of its conditions must hold (a route's blocks are ORed)."""

    uri_prefix: str | None = None
    method: str | None = None
    # Lowercase header name -> condition; `cookie` has its own key.
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    # One cookie, `name=value`, anywhere in the Cookie header.
    cookie: str | None = None

    _uri = field_validator("uri_prefix")(check_uri)
    _method = field_validator("method")(check_method)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, StringMatch]) -> dict[str, StringMatch]:
        for name in v:
            if name == "cookie":
                raise ValueError("match a cookie with `cookie: name=value`, not a cookie header")
            if not _HEADER.match(name):
                raise ValueError(
                    f"header name {name!r} must be lowercase letters, digits and '-' "
                    "(Istio matches lowercase header names)"
                )
        return v

    @field_validator("cookie")
    @classmethod
    def _cookie(cls, v: str | None) -> str | None:
        if v is not None and not _COOKIE.match(v):
            raise ValueError("must be one cookie as name=value, e.g. 'variant=beta'")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> RouteMatch:
        if not (self.uri_prefix or self.method or self.headers or self.cookie):
            raise ValueError(
                "a match block needs a condition (uriPrefix, method, headers or cookie); "
                "a catch-all route has no `match` at all"
            )
        return self

    @property
    def cookie_pair(self) -> tuple[str, str] | None:
        if self.cookie is None:
            return None
        m = _COOKIE.match(self.cookie)
        assert m is not None
        return m.group(1), m.group(2)

    def header_conditions(self) -> dict[str, dict[str, str]]:
        """Headers as Istio matches them, the cookie as a regex on the `cookie` header."""
        out = {name: m.istio() for name, m in sorted(self.headers.items())}
        if (pair := self.cookie_pair) is not None:
            out["cookie"] = {"regex": cookie_regex(*pair)}
        return out

    def istio(self, uri: dict[str, str] | None = None) -> dict[str, Any]:
        """The HTTPMatchRequest; `uri` replaces the block's own uri condition."""
        out: dict[str, Any] = {}
        if uri is not None:
            out["uri"] = uri
        elif self.uri_prefix is not None:
            out["uri"] = {"prefix": self.uri_prefix}
        if self.method is not None:
            out["method"] = {"exact": self.method}
        if headers := self.header_conditions():
            out["headers"] = headers
        return out
