"""Name rules shared by the manifest and the stack config: each raises ValueError saying the fix."""

from __future__ import annotations

import hashlib
import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_FOLDER_PATH = re.compile(r"^/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # what Infisical's slugify() leaves unchanged
_INTERVAL = re.compile(r"^([0-9]{1,12})([smhdw])$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_NUMBER = r"(0|[1-9][0-9]*)"
_EXACT_VERSION = re.compile(rf"^v?{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")  # SemVer

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MIN_INTERVAL_SECONDS = 5  # the operator's minimum resync interval
MAX_INTERVAL_SECONDS = (2**63 - 1) // 10**9  # Go's time.Duration (int64 nanoseconds): about 292 years
MAX_PROJECT_SLUG = 36  # Infisical's project slug: 5 to 36 characters
MAX_ENVIRONMENT_SLUG = 64
MAX_SECRET_KEY = 253  # a Kubernetes Secret's data key


def shown(value: object, limit: int = 60) -> str:
    """``value`` for a message, spelled as YAML would (true, null) or as ``repr``, cut to about
    ``limit`` characters with the full length said."""
    text = ("null" if value is None else str(value).lower()) if _yaml_scalar(value) else repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


def _yaml_scalar(value: object) -> bool:
    """Whether YAML spells ``value`` its own way (true, false, null)."""
    return value is None or isinstance(value, bool)


def _require(pattern: re.Pattern[str], value: str, what: str, max_length: int | None = None) -> str:
    """Return ``value`` if it matches; else a ValueError saying it is not ``what`` (which says the fix)."""
    if (max_length is not None and len(value) > max_length) or not pattern.match(value):
        raise ValueError(f"{shown(value)} is not {what}")
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
        "an environment-variable name: use letters, digits and '_', not starting with a digit "
        f"(like SNOWFLAKE_PASSWORD), at most {MAX_SECRET_KEY} characters"
    )
    return _require(_ENV_VAR, value, what, max_length=MAX_SECRET_KEY)


def slug(value: str) -> str:
    return _infisical_slug(value, "project", "floe-platform", MAX_PROJECT_SLUG)


def environment_slug(value: str) -> str:
    return _infisical_slug(value, "environment", "dev or prod-eu", MAX_ENVIRONMENT_SLUG)


def _infisical_slug(value: str, what: str, example: str, limit: int) -> str:
    rule = (
        f"an Infisical {what} slug: use lowercase letters and digits, in words joined by single '-' "
        f"(like {example}), at most {limit} characters"
    )
    return _require(_SLUG, value, rule, max_length=limit)


def interval(value: str) -> str:
    """A manifest interval: a whole number and a unit (s, m, h, d, w), from 5s to Go's longest duration."""
    interval_seconds(value)
    return value


def interval_seconds(value: str) -> int:
    match = _INTERVAL.match(value)
    if not match:
        raise ValueError(f"{shown(value)} is not an interval: write a whole number and a unit, like 30s, 5m or 1h")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds < MIN_INTERVAL_SECONDS:
        raise ValueError(f"{value!r} is too short: the operator's minimum resync interval is 5s")
    if seconds > MAX_INTERVAL_SECONDS:
        raise ValueError(
            f"{value!r} is too long: the operator's durations end at {MAX_INTERVAL_SECONDS // UNIT_SECONDS['w']}w"
        )
    return seconds


def go_duration(value: str) -> str:
    """A manifest interval (``60s``, ``1d``) in Go's duration syntax, which has no days or weeks."""
    return f"{interval_seconds(value)}s"


_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def identity_id(value: str) -> str:
    """An Infisical machine identity's id (Infisical answers any other string with a 500)."""
    return _require(_UUID, value, "a machine identity id: copy the identity's ID (a UUID) from Infisical")


_ROTATION = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?\Z")


def rotation(value: str) -> str:
    """A rotation mark: it ends the identity Secret's name, so lowercase letters, digits and '-'."""
    what = "a rotation mark: use at most 20 lowercase letters, digits and '-' (like 2026-12)"
    return _require(_ROTATION, value, what)


def exact_version(value: str) -> str:
    return _require(
        _EXACT_VERSION, value, "an exact chart version: pin one release, like v0.11.5 (not latest or a range)"
    )


def site_url(value: str) -> str:
    """Infisical's site URL, to which the operator and the SDK add ``/api`` themselves."""
    url(value)
    if value.rstrip("/").endswith("/api"):
        raise ValueError(
            f"{value!r} ends in /api: write the site URL without it, like {value.rstrip('/')[: -len('/api')]} "
            "(floe adds /api for the operator)"
        )
    return value


def url(value: str) -> str:
    return _require(_URL, value, "an http(s) URL: write it like https://infisical.company.com")


def object_name(*parts: str, max_length: int = 253) -> str:
    """``parts`` joined with '-' as a DNS-1123 name (lowercase; other characters become '-'). One
    longer than ``max_length`` is cut and ends in a hash of the whole, so two long names differ."""
    whole = "-".join(parts)
    name = re.sub(r"[^a-z0-9.-]+", "-", whole.lower())
    name = re.sub(r"[-.]*\.[-.]*", ".", name).strip("-.")  # labels between dots start and end alphanumeric
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-.')}-{digest}"
