"""A logged-in infisicalsdk client with what the SDK leaves out, shared per process.

infisicalsdk 1.0.18 sets no request timeout (a dead server hangs ``pulumi up`` forever), never logs
in again when a token expires, does not retry 429 or 5xx, and caches secrets for 60 seconds (which
would make a refresh lie). :class:`Connection` adds a timeout to every request and the retry
policy of :mod:`.transport`, one re-login on an expired token, ``cache_ttl=None``, and the
project lookup; :mod:`.errors` reads Infisical's answers, :mod:`.auth` finds the credentials.

Connections live in a process-level cache keyed by host and client id, never on an object that is
pickled: Pulumi stores the dynamic provider in the state, so the provider holds no client or token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from .auth import Credentials
from .errors import (
    PROJECT_SLUG_ADVICE,
    InfisicalError,
    NotFound,
    PermissionDenied,
    ProjectGone,
    ProjectNotFound,
    Refused,
    TokenExpired,
    api_error,
    classify,
)
from .transport import RetryPolicy, Transient, _PolicyAdapter

if TYPE_CHECKING:
    from infisical_sdk import InfisicalSDKClient

T = TypeVar("T")


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
