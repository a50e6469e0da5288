"""HTTP under infisicalsdk: a timeout on every request, a bounded retry policy that honours
``Retry-After``, and transient failures (no answer, 429, 5xx) told apart from definite ones."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .errors import PULUMI_ADVICE


@dataclass(frozen=True)
class RetryPolicy:
    """How long one operation may take: per-request timeout, backoff, and a total deadline.

    ``unreached_deadline``: a shorter deadline while the host cannot be reached at all (connection
    refused, no DNS answer), for a command a person waits on. ``progress`` hears of each retry.
    ``advice`` ends the message when the deadline passes.
    """

    timeout: float = 30.0
    deadline: float = 120.0
    backoff: float = 1.0
    max_backoff: float = 20.0
    unreached_deadline: float | None = None
    advice: str = PULUMI_ADVICE
    progress: Callable[[str], None] | None = field(default=None, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        base = min(self.max_backoff, self.backoff * 2.0 ** min(attempt - 1, 64))  # 2.0 ** 1024 overflows
        return base * random.uniform(0.8, 1.2)


class Transient(Exception):
    """A failure worth retrying: no answer in time, a dropped connection, 429 or 5xx. Retried
    within the policy inside :meth:`Connection.call`; the caller sees an :class:`InfisicalError`
    when the deadline passes.

    ``may_have_landed``: the server may have done what was asked (the request went out and no
    definite answer came back: a read timeout, a connection lost after sending, a 5xx). A refused
    connection, a connect timeout and a 429 are definite: nothing happened.
    """

    def __init__(
        self,
        what: str,
        retry_after: float | None = None,
        *,
        may_have_landed: bool,
        unreached: bool = False,
        status: int | None = None,
    ) -> None:
        super().__init__(what)
        self.retry_after = retry_after
        self.may_have_landed = may_have_landed
        self.unreached = unreached  # no connection at all: refused, or the name did not resolve
        self.status = status  # the HTTP status of a 429 or 5xx; None when no answer came

    @property
    def server_fault(self) -> bool:
        """The server answered 5xx: an outage, or (on this Infisical) a lookup of a project that is gone."""
        return self.status is not None and self.status >= 500


class RateLimited(Transient):
    """429: Infisical asks for fewer requests; nothing happened, and ``retry_after`` says when."""


class _PolicyAdapter(HTTPAdapter):
    """Gives every request a timeout and turns transient failures into :class:`Transient`.

    Raising here, below the SDK, keeps the SDK's own retry (fixed sleeps, no deadline, no 429) out
    of the way: it only retries network exceptions, and ``Transient`` is not one of them.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = kwargs.get("timeout") or self._timeout
        try:
            response = super().send(request, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            unreached = "NewConnectionError" in repr(exc) or "NameResolutionError" in repr(exc)
            not_sent = isinstance(exc, requests.ConnectTimeout) or unreached
            raise Transient(
                f"{type(exc).__name__} from {request.method} {_path(request.url)}",
                may_have_landed=not not_sent,
                unreached=unreached,
            ) from None
        what = f"HTTP {response.status_code} from {request.method} {_path(request.url)}"
        if response.status_code == 429:
            raise RateLimited(what, _retry_after(response.headers), may_have_landed=False, status=429)
        if response.status_code >= 500:
            raise Transient(what, _retry_after(response.headers), may_have_landed=True, status=response.status_code)
        return response


def _path(url: str | None) -> str:
    return (url or "").split("?", 1)[0]


def _retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110); None if absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
