"""Name rules shared by the manifest and the stack config: each raises ValueError saying the fix."""

from __future__ import annotations

import hashlib
import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_FOLDER_PATH = re.compile(r"^/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLUG = re.compile(r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
_INTERVAL = re.compile(r"^([0-9]+)([smhdw])$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


def _require(pattern: re.Pattern[str], value: str, what: str, max_length: int | None = None) -> str:
    """Return ``value`` if it matches; else a ValueError saying it is not ``what`` (which says the fix)."""
    if (max_length is not None and len(value) > max_length) or not pattern.match(value):
        raise ValueError(f"{value!r} is not {what}")
    return value


def dns_label(value: str) -> str:
    what = (
        "a DNS-1123 label: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"
    )
    return _require(_DNS1123_LABEL, value, what, max_length=63)


def dns_name(value: str) -> str:
    what = "a DNS-1123 name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
    return _require(_DNS1123_SUBDOMAIN, value, what, max_length=253)


def folder_path(value: str) -> str:
    what = (
        "an Infisical folder path: start with '/' and use segments of letters, digits, '-' and '_' "
        "(like /compute/snowflake)"
    )
    return _require(_FOLDER_PATH, value, what)


def env_var(value: str) -> str:
    what = (
        "an environment-variable name: use letters, digits and '_', not starting with a digit (like SNOWFLAKE_PASSWORD)"
    )
    return _require(_ENV_VAR, value, what)


def slug(value: str) -> str:
    return _require(_SLUG, value, "an Infisical project slug: use lowercase letters, digits, '-' and '_'")


def interval(value: str) -> str:
    match = _INTERVAL.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an interval: write a whole number and a unit, like 30s, 5m or 1h")
    if match.group(2) == "s" and int(match.group(1)) < 5:
        raise ValueError(f"{value!r} is too short: the operator's minimum resync interval is 5s")
    return value


def url(value: str) -> str:
    return _require(_URL, value, "an http(s) URL: write it like https://infisical.company.com")


def object_name(*parts: str, max_length: int = 253) -> str:
    """``parts`` joined with '-' as a DNS-1123 name (lowercase; other characters become '-'). One
    longer than ``max_length`` is cut and ends in a hash of the whole, so two long names differ."""
    whole = "-".join(parts)
    name = re.sub(r"[^a-z0-9.-]+", "-", whole.lower()).strip("-.")
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-.')}-{digest}"
