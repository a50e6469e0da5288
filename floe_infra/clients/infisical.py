"""A logged-in infisicalsdk client with what the SDK leaves out, shared per process.

infisicalsdk 1.0.18 sets no request timeout (a dead server hangs ``pulumi up`` forever), never logs
in again when a token expires, does not retry 429 or 5xx, and caches secrets for 60 seconds (which
would make a refresh lie). :class:`Connection` adds a timeout to every request, a bounded retry
policy that honours ``Retry-After``, one re-login on an expired token, and ``cache_ttl=None``.

Connections live in a process-level cache keyed by host and client id, never on an object that is
pickled: Pulumi stores the dynamic provider in the state, so the provider holds no client or token.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from ..errors import FloeError
from ..model import names
from ..model.settings import WRITER_ENV

if TYPE_CHECKING:
    from infisical_sdk import InfisicalSDKClient
    from infisical_sdk.infisical_requests import APIError

T = TypeVar("T")

HOST_ENV, CLIENT_ID_ENV, CLIENT_SECRET_ENV = WRITER_ENV["siteUrl"], WRITER_ENV["clientId"], WRITER_ENV["clientSecret"]


class InfisicalError(FloeError):
    """Infisical refused or failed a request; the message says what to do and holds no secret."""


PULUMI_ADVICE = "Pulumi keeps only what succeeded, so run the same command again once Infisical answers"


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


@dataclass(frozen=True)
class Credentials:
    """The writer machine identity (Universal Auth). ``repr`` never shows the secret."""

    host: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def resolve(
        cls, config: Callable[[str], Any], default_host: str | None = None, *, for_cli: bool = False
    ) -> Credentials:
        """From ``infisical:*`` stack config, else the environment Infisical's own tools read.

        ``for_cli``: there is no stack config, so the message names only the variables.
        """
        host, source = _writer_host_and_source(config, default_host)
        if host is not None:
            try:
                names.url(host)
            except ValueError as exc:
                raise InfisicalError(f"the Infisical host ({source}) {exc}") from None
        client_id = config("infisical:clientId") or os.environ.get(CLIENT_ID_ENV)
        client_secret = config("infisical:clientSecret") or os.environ.get(CLIENT_SECRET_ENV)
        wanted = (
            (host, "`pulumi config set infisical:siteUrl https://...`", HOST_ENV),
            (client_id, "`pulumi config set infisical:clientId <client-id>`", CLIENT_ID_ENV),
            (client_secret, "`pulumi config set --secret infisical:clientSecret <secret>`", CLIENT_SECRET_ENV),
        )
        missing = [env if for_cli else f"{command} (or {env})" for value, command, env in wanted if not value]
        if missing:
            raise InfisicalError("no Infisical machine identity to use: set " + " and ".join(missing))
        return cls(str(host), str(client_id), str(client_secret))


def writer_host(config: Callable[[str], Any], default_host: str | None) -> str | None:
    """Where the writer writes: ``infisical:siteUrl``, else INFISICAL_HOST, else ``default_host``
    (the manifest's site_url)."""
    return _writer_host_and_source(config, default_host)[0]


def _writer_host_and_source(config: Callable[[str], Any], default_host: str | None) -> tuple[str | None, str]:
    """The writer's host, and which setting gave it (for messages)."""
    for value, source in (
        (config("infisical:siteUrl"), "infisical:siteUrl"),
        (os.environ.get(HOST_ENV), HOST_ENV),
        (default_host, "the manifest's site_url"),
    ):
        if value:
            return str(value).rstrip("/"), source
    return None, "the manifest's site_url"


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


class Refused(Exception):
    """Infisical answered a request with a definite no. The subclass says which; callers decide
    what it means for their operation (a delete that finds nothing is done, a read that finds
    nothing is drift) and word the user's message. Raised by :meth:`Connection.call` only."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind or 'error'}: {message}")
        self.status, self.kind, self.message = status, kind, message


class NotFound(Refused):
    """404: a secret, a project, or the folder or environment (``folder_missing``)."""

    @property
    def folder_missing(self) -> bool:
        return "Folder not found" in self.message

    @property
    def key_missing(self) -> bool:
        """The secret itself is not there (its folder, environment and project are)."""
        return not self.folder_missing


class ProjectNotFound(NotFound):
    """404: the project does not exist (any more), or not in the identity's organisation. Said by
    ``GET /api/v1/projects/slug/{slug}`` ("Project with slug '...' not found") and by every request
    that names the project by id ("Project not found during bot lookup..."). A project that exists
    but that the identity is no member of is a 403, not this."""

    @property
    def key_missing(self) -> bool:
        return False


PROJECT_NOT_FOUND = re.compile(r"Project with slug '.*' not found|Project not found during bot lookup\b.*", re.DOTALL)
"""The 404 messages of a project that is not there. A 404 for a route the server lacks (an older
server without ``/api/v1/projects/slug``) says ``Route GET:... not found``: not this."""


class AlreadyExists(Refused):
    """400: a secret of that name is already in that folder."""


class TokenExpired(Refused):
    """The access token is no longer good; a new login fixes it. 403 TokenError: past the identity's
    accessTokenMaxTTL (the JWT's exp), or malformed. 401 UnauthorizedError with one of
    :data:`TOKEN_GONE`: past its accessTokenTTL (the server deletes it on that first use), or
    deleted already."""


TOKEN_GONE = frozenset(
    {
        "Failed to renew MI access token due to TTL expiration",  # the first use past accessTokenTTL
        "No identity access token found",  # every later use: the server deleted the token
    }
)
"""The 401 messages (identity-access-token-service.ts) that mean the token is no longer good. Any
other 401 is not: a wrong client secret, a request body the server's validation refused."""


class PermissionDenied(Refused):
    """403 PermissionDenied: the identity's role does not allow the action."""


@cache
def api_error() -> type[APIError]:
    """The SDK's error class, imported on first use: the SDK (and boto3, which it imports) is a
    tenth of a second that a program whose secrets all come from config, or a preview, need not
    pay."""
    from infisical_sdk.infisical_requests import APIError

    error: type[APIError] = APIError
    return error


def classify(exc: APIError) -> Refused:
    """The one reading of an SDK error: Infisical's status, ``error`` field and message (the
    message, not the status, tells a missing folder from a missing secret, or a duplicate key)."""
    body = exc.response if isinstance(exc.response, dict) else {}
    kind = str(body.get("error", ""))
    message = body.get("message", "")
    if isinstance(message, list):  # zod validation issues
        message = "; ".join(f"{'.'.join(map(str, m.get('path', [])))}: {m.get('message')}" for m in message)
    status = int(exc.status_code or 0)
    if status == 404 and PROJECT_NOT_FOUND.fullmatch(str(message)):
        return ProjectNotFound(status, kind, str(message))
    if status == 404:
        return NotFound(status, kind, str(message))
    if status == 400 and "already exist" in str(message):
        return AlreadyExists(status, kind, str(message))
    if status == 403 and kind == "TokenError":
        return TokenExpired(status, kind, str(message))
    if status == 401 and kind == "UnauthorizedError" and str(message) in TOKEN_GONE:
        return TokenExpired(status, kind, str(message))
    if status == 403 and kind == "PermissionDenied":
        return PermissionDenied(status, kind, str(message))
    return Refused(status, kind, str(message))


PROJECT_SLUG_ADVICE = "check the project slug (plugins.secrets.config.project_slug in the manifest)"


class ProjectGone(InfisicalError):
    """:meth:`Connection.project_id` found no project of that slug: Infisical said so, at once
    (never an outage to wait out). A delete or a refresh takes it as "gone with the project"."""

    def __init__(self, host: str, slug: str, refused: ProjectNotFound) -> None:
        super().__init__(f"Infisical at {host} has no project {slug} ({refused}); {PROJECT_SLUG_ADVICE}")
        self.slug, self.refused = slug, refused


PROJECT_BY_SLUG_V2 = "/api/v2/workspace/{slug}"
PROJECT_BY_SLUG_V1 = "/api/v1/projects/slug/{slug}"
"""The two lookups of a project by slug. v2 is the one this server version has always had, and it
answers a slug with no project **500** (its DAL wraps the not-found in a DatabaseError), as does a
secret read or list by ``workspaceSlug``; v1 (later upstream, backported to ours) answers it 404
"Project with slug '...' not found". Servers without v1 answer it with a route-not-found 404."""


class Connection:
    """One logged-in client for one identity on one host, safe to share between threads."""

    def __init__(self, credentials: Credentials, policy: RetryPolicy) -> None:
        self.host = credentials.host
        self.client_id = credentials.client_id
        self.policy = policy
        self._secret = credentials.client_secret
        self.client = self._new_client()
        self._lock = threading.Lock()
        self._generation = 0
        self._projects: dict[str, dict[str, Any]] = {}
        self._folders: set[tuple[str, str, str]] = set()

    def __getstate__(self) -> None:
        raise TypeError("an Infisical connection holds a token and must never be pickled")

    def _new_client(self) -> InfisicalSDKClient:
        from infisical_sdk import InfisicalSDKClient

        client = InfisicalSDKClient(host=self.host, cache_ttl=None)
        adapter = _PolicyAdapter(self.policy.timeout)
        client.api.session.mount("http://", adapter)
        client.api.session.mount("https://", adapter)
        return client

    def _login(self, seen: int, stale: Refused | None = None) -> None:
        """Log in, unless another thread did since generation ``seen``. ``stale``: the refusal of
        the old token that makes this a re-login (its message says so when the login fails)."""
        with self._lock:
            if self._generation != seen:
                return  # another thread logged in meanwhile
            if self._generation:
                # The SDK sends its last token with every request, the login included, and Infisical
                # refuses a login that carries an expired one (403 TokenError): log in from a new client.
                self.client = self._new_client()
            try:
                self._retrying("log in", lambda: self.client.auth.universal_auth.login(self.client_id, self._secret))
            except api_error() as exc:
                failure = self._login_failure(classify(exc))
                if stale is not None:
                    failure = f"logging in again after Infisical refused the access token (HTTP {stale}): {failure}"
                raise InfisicalError(failure) from None
            self._generation += 1

    def _login_failure(self, refused: Refused) -> str:
        where = f"Infisical at {self.host} refused machine identity {self.client_id}"
        if refused.status == 401:
            return (
                f"{where}: wrong client secret (HTTP {refused}); "
                "set it with `pulumi config set --secret infisical:clientSecret`"
            )
        if isinstance(refused, NotFound):
            return f"{where}: no identity has this client id (HTTP {refused}); check `infisical:clientId`"
        return f"{where} (HTTP {refused})"

    def call(
        self,
        what: str,
        fn: Callable[[InfisicalSDKClient], T],
        on_retry: Callable[[bool], None] | None = None,
        *,
        project: str | None = None,
    ) -> T:
        """Run ``fn(client)`` logged in, within the retry policy. A token that is no longer good
        (:class:`TokenExpired`) logs in again, with a new client, and ``fn`` runs once more; refused
        again, that is an :class:`InfisicalError` naming the identity, never another login. Any
        other refusal reaches the caller as a :class:`Refused` subclass; the caller knows what it
        means for its operation. ``on_retry(may_have_landed)`` hears of each failed attempt that
        is retried.

        ``project``: the slug ``fn``'s request names the project by. Infisical answers such a
        request 500 when there is no such project, so the first 5xx asks the v1 lookup (once): if
        that says the project is not there, the caller gets :class:`ProjectNotFound` at once
        instead of retries until the deadline."""
        if self._generation == 0:
            self._login(0)
        relogged = False
        while True:
            seen = self._generation
            try:
                return self._retrying(what, lambda: fn(self.client), on_retry, project)
            except api_error() as exc:
                refused = classify(exc)
                if not isinstance(refused, TokenExpired):
                    raise refused from None
                if relogged:
                    raise InfisicalError(
                        f"could not {what}: Infisical at {self.host} refused the access token of machine identity "
                        f"{self.client_id} again right after a new login (HTTP {refused}); check that the "
                        "identity's Universal Auth access token TTL is longer than a request takes, and that "
                        "the server's clock is right"
                    ) from None
                relogged = True
                self._login(seen, stale=refused)

    def _retrying(
        self,
        what: str,
        fn: Callable[[], T],
        on_retry: Callable[[bool], None] | None = None,
        project: str | None = None,
    ) -> T:
        policy = self.policy
        start = time.monotonic()
        attempt = 0
        probe = project  # asked once, at the first 5xx
        while True:
            try:
                return fn()
            except Transient as exc:
                if probe is not None and exc.server_fault:
                    gone, probe = self._project_not_found(probe), None
                    if gone is not None:
                        raise gone from None
                attempt += 1
                if on_retry is not None:
                    on_retry(exc.may_have_landed)
                delay = policy.delay(attempt, exc.retry_after)
                limit = policy.deadline
                if exc.unreached and policy.unreached_deadline is not None:
                    limit = min(limit, policy.unreached_deadline)
                if time.monotonic() + delay > start + limit:
                    raise InfisicalError(
                        f"could not {what}: Infisical at {self.host} "
                        f"{'could not be reached' if exc.unreached else 'kept failing'} for {limit:.0f}s "
                        f"({attempt} attempts, last: {exc}); {policy.advice}"
                    ) from None
                if policy.progress is not None:
                    policy.progress(
                        f"Infisical at {self.host}: {exc}; retrying in {delay:.0f}s (attempt {attempt + 1})"
                    )
                time.sleep(delay)

    def _project_not_found(self, slug: str) -> ProjectNotFound | None:
        """Whether Infisical says there is no project ``slug``: one request to the v1 lookup, no
        retry. None when it has the project, cannot say (an older server without the route, a
        fault, a refusal) or did not answer: the caller's 5xx is then an outage as before."""
        try:
            self.client.api.get(path=PROJECT_BY_SLUG_V1.format(slug=quote(slug, safe="")), model=dict)
        except api_error() as exc:
            refused = classify(exc)
            return refused if isinstance(refused, ProjectNotFound) else None
        except Transient:
            return None
        return None

    def denied(self, refused: Refused, action: str, scope: str, project: str, environment: str) -> InfisicalError:
        """The message for a request Infisical refused for good (no retry can help)."""
        if isinstance(refused, ProjectNotFound):
            return InfisicalError(
                f"could not {action} {scope}: Infisical at {self.host} has no project {project} ({refused}); "
                f"{PROJECT_SLUG_ADVICE}"
            )
        if isinstance(refused, NotFound) and refused.folder_missing:
            return InfisicalError(
                f"could not {action} {scope}: Infisical has no environment {environment} or no such folder in "
                f"project {project}; check the environment slug (floe:environment) against the project's environments"
            )
        if isinstance(refused, PermissionDenied):
            return InfisicalError(
                f"machine identity {self.client_id} may not {action} {scope} on {self.host} "
                f"({refused}): give it a role with that permission in the project"
            )
        return InfisicalError(f"could not {action} {scope} on {self.host}: {refused}")

    def project_id(self, slug: str) -> str:
        """Writes need the project id; ``GET /api/v2/workspace/{slug}`` gives it (no SDK method).
        :class:`ProjectGone` when Infisical says there is no such project."""
        return str(self.project(slug)["id"])

    def project(self, slug: str) -> Mapping[str, Any]:
        """The project as ``GET /api/v2/workspace/{slug}`` answers it (``id``, ``orgId``, ...)."""
        if slug not in self._projects:
            try:
                body = self.call(
                    f"look up project {slug}",
                    lambda c: c.api.get(path=PROJECT_BY_SLUG_V2.format(slug=quote(slug, safe="")), model=dict).data,
                    project=slug,
                )
            except ProjectNotFound as gone:
                raise ProjectGone(self.host, slug, gone) from None
            except Refused as refused:
                raise InfisicalError(f"could not look up project {slug} on {self.host}: {refused}") from None
            self._projects[slug] = dict(body)
        return self._projects[slug]

    def ensure_folders(self, project: str, environment: str, path: str) -> None:
        """Create every folder of ``path`` that this process has not seen (creating one that
        exists returns it), because Infisical will not create a secret's folder for it."""
        project_id = self.project_id(project)
        parent = "/"
        for name in [p for p in path.split("/") if p]:
            folder = f"{parent.rstrip('/')}/{name}"
            key = (project_id, environment, folder)
            if key not in self._folders:

                def create(client: InfisicalSDKClient, name: str = name, parent: str = parent) -> object:
                    return client.folders.create_folder(
                        name=name, environment_slug=environment, project_id=project_id, path=parent
                    )

                try:
                    self.call(f"create folder {folder}", create)
                except Refused as refused:
                    raise self.denied(
                        refused, "create", f"folder {folder} in environment {environment}", project, environment
                    ) from None
                self._folders.add(key)
            parent = folder


class Landed:
    """An ``on_retry`` for :meth:`Connection.call`: whether any retried attempt may have reached
    Infisical (its answer was lost), so the operation may have happened already."""

    def __init__(self) -> None:
        self.maybe = False

    def __call__(self, may_have_landed: bool) -> None:
        self.maybe = self.maybe or may_have_landed


_CONNECTIONS: dict[tuple[str, str], Connection] = {}
_CONNECTIONS_LOCK = threading.Lock()


def connect(credentials: Credentials, policy: RetryPolicy | None = None) -> Connection:
    """The process's connection for this identity and host: one login per process, not per call."""
    key = (credentials.host, credentials.client_id)
    with _CONNECTIONS_LOCK:
        conn = _CONNECTIONS.get(key)
        stale = conn is not None and (
            conn._secret != credentials.client_secret or (policy is not None and conn.policy != policy)
        )
        if conn is None or stale:
            conn = _CONNECTIONS[key] = Connection(credentials, policy or RetryPolicy())
        return conn


def forget_connections() -> None:
    """Drop every cached connection (a new process, as far as logins go)."""
    with _CONNECTIONS_LOCK:
        _CONNECTIONS.clear()
