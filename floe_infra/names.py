"""Name rules shared by the manifest and the stack config: each raises ValueError saying the fix."""

from __future__ import annotations

import re

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_FOLDER_PATH = re.compile(r"^/([A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLUG = re.compile(r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
_INTERVAL = re.compile(r"^([0-9]+)([smhdw])$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


def dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def dns_name(value: str) -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 name: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return value


def folder_path(value: str) -> str:
    if not _FOLDER_PATH.match(value):
        raise ValueError(
            f"{value!r} is not an Infisical folder path: start with '/' and use segments of "
            "letters, digits, '-' and '_' (like /compute/snowflake)"
        )
    return value


def env_var(value: str) -> str:
    if not _ENV_VAR.match(value):
        raise ValueError(
            f"{value!r} is not an environment-variable name: use letters, digits and '_', "
            "not starting with a digit (like SNOWFLAKE_PASSWORD)"
        )
    return value


def slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} is not an Infisical project slug: use lowercase letters, digits, '-' and '_'")
    return value


def interval(value: str) -> str:
    match = _INTERVAL.match(value)
    if not match:
        raise ValueError(f"{value!r} is not an interval: write a whole number and a unit, like 30s, 5m or 1h")
    if match.group(2) == "s" and int(match.group(1)) < 5:
        raise ValueError(f"{value!r} is too short: the operator's minimum resync interval is 5s")
    return value


def url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL: write it like https://infisical.company.com")
    return value
