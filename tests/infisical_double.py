"""A test double of the Infisical API: an HTTP server on 127.0.0.1 that answers like the real one.

It serves the paths infisicalsdk 1.0.18 calls, with the status codes and error bodies recorded
against a self-hosted server (../shared/reference/infisical-api-recordings.json and
infisical-token-expiry-recordings.json, and recordings/infisical-gone-recordings.json: a project or
folder that does not exist; a test replays them all). That server answers a lookup by slug of a
project that does not exist 500 (``GET /api/v2/workspace/{slug}``, a secret read or list by
``workspaceSlug``) and 404 on ``GET /api/v1/projects/slug/{slug}``; ``project_slug_route=False``
makes the double a server without that v1 route. It counts requests and injects
faults: latency, 429/5xx with Retry-After, dropped connections, expired tokens.
It is a double: it lives in tests/ and nothing in floe_infra uses it.

Token expiry has two stages, as the server's identity-access-token service has them (the JWT's own
``exp`` is the identity's accessTokenMaxTTL), on a virtual clock (:meth:`InfisicalDouble.advance`,
no sleeping) or set per token (:meth:`InfisicalDouble.expire_tokens`):

- past accessTokenTTL (from login or the last renew), within accessTokenMaxTTL: the first use, on any
  route or ``POST /api/v1/auth/token/renew``, gets 401 "Failed to renew MI access token due to TTL
  expiration" and deletes the token; every later use gets 401 "No identity access token found";
- past accessTokenMaxTTL: 403 TokenError "Your token has expired", on every route, renew and the
  login included (whenever the token is sent as the ``Authorization`` header).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local_server import JsonHandler, LocalServer

NOW = "2026-11-29T04:21:03.610Z"
JsonBody = dict[str, Any]


def _error(status: int, message: Any, error: str) -> tuple[int, JsonBody]:
    return status, {"statusCode": status, "message": message, "error": error}


def _required(field_name: str) -> tuple[int, JsonBody]:
    issue = {"code": "invalid_type", "expected": "string", "received": "undefined", "path": [field_name]}
    return _error(401, [{**issue, "message": "Required"}], "ValidationFailure")


FOLDER_NOT_FOUND = "Folder not found for the given environment slug & secret path"
FOLDER_NOT_FOUND_BY = {"POST": "Create secret", "PATCH": "UpdateSecret", "DELETE": "Delete secret"}  # its "error"
BOT_LOOKUP = "Project not found during bot lookup. Are you sure you are using the correct project ID?"
NOT_A_MEMBER = "You are not allowed to access this resource"
SOMETHING_WENT_WRONG = "Something went wrong"  # a 500's message; its "error" names the failed step
LOGIN = "/api/v1/auth/universal-auth/login"
RENEW = "/api/v1/auth/token/renew"
DEFAULT_TTL = 2592000  # a new Universal Auth identity's accessTokenTTL and accessTokenMaxTTL: 30 days

# The answers to a token that is no longer good (identity-access-token-service.ts, error-handler.ts).
# (status, message, error), as _error takes them.
TTL_EXPIRED = (401, "Failed to renew MI access token due to TTL expiration", "UnauthorizedError")
TOKEN_NOT_FOUND = (401, "No identity access token found", "UnauthorizedError")
JWT_EXPIRED = (403, "Your token has expired. Please re-authenticate.", "TokenError")
JWT_MALFORMED = (
    403,
    "The provided access token is malformed. Please use a valid token or generate a new one and try again.",
    "TokenError",
)
PAST_MAX_TTL_ON_RENEW = (401, "Failed to renew MI access token past its Max TTL expiration", "UnauthorizedError")

PAST_TTL, DELETED, PAST_MAX_TTL = "past-ttl", "deleted", "past-max-ttl"
"""The stages :meth:`InfisicalDouble.expire_tokens` puts tokens in."""


@dataclass
class Fault:
    """What the next matching requests get instead of an answer."""

    status: int | None = None  # None: drop the connection without answering
    retry_after: str | None = None
    times: int = 1
    path: str | None = None  # only requests whose path starts with this; None: any request


@dataclass
class Identity:
    """A machine identity with Universal Auth: its client secret, role, and token lifetimes (seconds)."""

    secret: str
    can_write: bool = True
    ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_TTL


@dataclass
class Token:
    """An access token the double issued. ``created`` and ``renewed`` are on the double's clock;
    ``deleted``: the server dropped its row (past its TTL once), yet the JWT still verifies."""

    client_id: str
    created: float
    renewed: float
    ttl: int
    max_ttl: int
    deleted: bool = False


@dataclass
class Project:
    id: str
    slug: str
    environments: tuple[str, ...] = ("dev", "staging", "prod")


@dataclass
class Secret:
    id: str
    value: str
    comment: str = ""
    version: int = 1


@dataclass
class InfisicalDouble:
    """State of a fake Infisical instance, plus the knobs tests turn."""

    identities: dict[str, Identity] = field(default_factory=dict)  # by client id
    projects: dict[str, Project] = field(default_factory=dict)
    folders: set[tuple[str, str, str]] = field(default_factory=set)  # (project id, env, path)
    secrets: dict[tuple[str, str, str, str], Secret] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    clock: float = 0.0  # seconds, virtual: only advance() moves it
    requests: list[tuple[str, str]] = field(default_factory=list)
    # what each request the API answered got: (kind as count() names it, status, error message or None)
    answers: list[tuple[str, int, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    latency: float = 0.0
    project_slug_route: bool = True  # False: a server without GET /api/v1/projects/slug/{slug}
    url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    # --- set-up and inspection -------------------------------------------------------------

    def add_identity(
        self,
        client_id: str,
        client_secret: str,
        *,
        can_write: bool = True,
        access_token_ttl: int = DEFAULT_TTL,
        access_token_max_ttl: int = DEFAULT_TTL,
    ) -> None:
        self.identities[client_id] = Identity(client_secret, can_write, access_token_ttl, access_token_max_ttl)

    def add_project(self, slug: str, environments: tuple[str, ...] = ("dev", "staging", "prod")) -> Project:
        project = Project(str(uuid.uuid4()), slug, environments)
        self.projects[slug] = project
        for env in environments:
            self.folders.add((project.id, env, "/"))
        return project

    def remove_project(self, slug: str) -> None:
        """Delete a project, with its folders and secrets, as deleting it in Infisical does."""
        with self.lock:
            project = self.projects.pop(slug)
            self.folders = {f for f in self.folders if f[0] != project.id}
            self.secrets = {k: v for k, v in self.secrets.items() if k[0] != project.id}

    def token_for(self, client_id: str) -> str:
        """A token for ``client_id``, as a login at the current clock issues it."""
        identity = self.identities.get(client_id, Identity(""))
        token = f"tok-{uuid.uuid4().hex}"
        with self.lock:
            self.tokens[token] = Token(client_id, self.clock, self.clock, identity.ttl, identity.max_ttl)
        return token

    def advance(self, seconds: float) -> None:
        """Move the clock: every token ages, and each reaches its stages as on the real server."""
        with self.lock:
            self.clock += seconds

    def expire_tokens(self, stage: str = PAST_MAX_TTL) -> None:
        """Put every token issued so far (not later ones) in ``stage``, whatever its lifetimes:

        - ``PAST_TTL``: past its accessTokenTTL, within its accessTokenMaxTTL: the next use gets 401
          "Failed to renew MI access token due to TTL expiration" and deletes it;
        - ``DELETED``: deleted already (it was used once past its TTL): 401 "No identity access token found";
        - ``PAST_MAX_TTL``: past its accessTokenMaxTTL (the JWT's exp): 403 TokenError "Your token has expired".
        """
        with self.lock:
            for token in self.tokens.values():
                if stage == PAST_TTL:
                    token.renewed = self.clock - token.ttl - 1
                elif stage == DELETED:
                    token.deleted = True
                elif stage == PAST_MAX_TTL:
                    token.created = token.renewed = self.clock - token.max_ttl - 1
                else:
                    raise ValueError(f"unknown token stage {stage!r}: use {PAST_TTL}, {DELETED} or {PAST_MAX_TTL}")

    def logins(self) -> int:
        """Universal Auth logins asked for, answered or not."""
        return self.count()[f"POST {LOGIN}"]

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def count(self) -> Counter[str]:
        """Requests by kind, e.g. ``POST /api/v3/secrets/raw`` (secret names dropped)."""
        return Counter(f"{m} {_route(p)}" for m, p in self.requests)

    def value(self, project: Project, env: str, path: str, key: str) -> str | None:
        secret = self.secrets.get((project.id, env, path, key))
        return secret.value if secret else None

    # --- the API ----------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: JsonBody) -> tuple[int, JsonBody] | None:
        url = urlsplit(target)
        path = unquote(url.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append((method, path))
            fault = next((f for f in self.faults if f.path is None or path.startswith(f.path)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.status is None:
                    return None
                status, payload = _error(fault.status, "injected fault", "Injected")
                if fault.retry_after is not None:
                    payload["retryAfter"] = fault.retry_after
                return status, payload
            status, payload = self._answer(method, path, query, headers, body)
            self.answers.append((f"{method} {_route(path)}", status, payload.get("message") if status >= 400 else None))
            return status, payload

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: JsonBody
    ) -> tuple[int, JsonBody]:
        # The real server checks a bearer token on every request that carries one (an onRequest
        # hook), the login and the renew included: a stale one is refused there too.
        header = headers.get("authorization")
        caller = self._authenticate(header) if header else None
        if isinstance(caller, tuple):
            return caller
        if method == "POST" and path == LOGIN:
            return self._login(body)
        if method == "POST" and path == RENEW:
            return self._renew(body)
        if caller is None:
            return _error(401, "Token missing", "UnauthorizedError")
        return self._route(method, path, query, body, caller)

    def _login(self, body: JsonBody) -> tuple[int, JsonBody]:
        known = self.identities.get(str(body.get("clientId")))
        if known is None:
            return _error(404, "No identity with specified client ID was found", "NotFound")
        if known.secret != body.get("clientSecret"):
            return _error(401, "Invalid credentials", "UnauthorizedError")
        token = self.token_for(str(body["clientId"]))
        return 200, _token_body(token, self.tokens[token])

    def _renew(self, body: JsonBody) -> tuple[int, JsonBody]:
        """``POST /api/v1/auth/token/renew``: the token in the body, checked as a bearer token is;
        its TTL restarts unless that would take it past its max TTL. The same token comes back."""
        token = body.get("accessToken")
        if not isinstance(token, str):
            return _required("accessToken")
        refused = self._check(token)
        if refused is not None:
            return refused
        found = self.tokens[token]
        if self.clock + found.ttl > found.created + found.max_ttl:
            found.deleted = True
            return _error(*PAST_MAX_TTL_ON_RENEW)
        found.renewed = self.clock
        return 200, _token_body(token, found)

    def _check(self, token: str) -> tuple[int, JsonBody] | None:
        """The server's checks of an access token, in its order: the JWT (malformed, then past its
        exp, which is the max TTL), then its row (deleted, then past its TTL, which deletes it)."""
        found = self.tokens.get(token)
        if found is None:
            return _error(*JWT_MALFORMED)
        if self.clock >= found.created + found.max_ttl:
            return _error(*JWT_EXPIRED)
        if found.deleted:
            return _error(*TOKEN_NOT_FOUND)
        if self.clock > found.renewed + found.ttl:
            found.deleted = True
            return _error(*TTL_EXPIRED)
        return None

    def _authenticate(self, header: str) -> tuple[int, JsonBody] | bool:
        """The caller's write permission, or the error answer."""
        token = header.removeprefix("Bearer ").strip()
        refused = self._check(token)
        if refused is not None:
            return refused
        identity = self.identities.get(self.tokens[token].client_id)
        if identity is None:  # deleting an identity deletes its tokens' rows
            return _error(*TOKEN_NOT_FOUND)
        return identity.can_write

    def _route(
        self, method: str, path: str, query: dict[str, str], body: JsonBody, can_write: bool
    ) -> tuple[int, JsonBody]:
        if method == "GET" and path.startswith("/api/v2/workspace/"):
            project = self.projects.get(path.rsplit("/", 1)[1])
            if project is None:  # the project DAL wraps its NotFound in a DatabaseError
                return _error(500, SOMETHING_WENT_WRONG, "Failed to find project by slug")
            return 200, self._project_body(project)
        if method == "GET" and path.startswith("/api/v1/projects/slug/") and self.project_slug_route:
            slug = path.rsplit("/", 1)[1]
            project = self.projects.get(slug)
            if project is None:
                return _error(404, f"Project with slug '{slug}' not found", "NotFound")
            return 200, self._project_body(project)
        if path == "/api/v2/folders" and method == "POST":
            return self._create_folder(body, can_write)
        if path.startswith("/api/v2/folders/") and method == "DELETE":
            return self._delete_folder(path.rsplit("/", 1)[1], body, can_write)
        if path == "/api/v3/secrets/raw" and method == "GET":
            return self._list(query)
        if path.startswith("/api/v3/secrets/raw/"):
            key = path.rsplit("/", 1)[1]
            if method == "GET":
                return self._get(key, query)
            return self._write(method, key, body, can_write)
        return _error(404, f"Route {method}:{path} not found", "Not Found")

    def _project_body(self, p: Project) -> JsonBody:
        envs = [
            {"name": e.title(), "slug": e, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, p.id + e))} for e in p.environments
        ]
        return {
            "id": p.id, "name": p.slug.title(), "slug": p.slug, "autoCapitalization": True, "orgId": "org",
            "createdAt": NOW, "updatedAt": NOW, "version": 3, "upgradeStatus": None, "pitVersionLimit": 10,
            "kmsCertificateKeyId": None, "auditLogsRetentionDays": None, "_id": p.id, "environments": envs,
        }  # fmt: skip

    def _project_by_id(self, project_id: Any) -> Project | None:
        return next((p for p in self.projects.values() if p.id == project_id), None)

    def _project_by_query(self, query: dict[str, str]) -> Project | None:
        if "workspaceId" in query:
            return self._project_by_id(query["workspaceId"])
        return self.projects.get(query.get("workspaceSlug", ""))

    @staticmethod
    def _no_project(query: dict[str, str], by_slug_step: str) -> tuple[int, JsonBody]:
        """The answer to a secrets request for a project that does not exist: by id, the project
        bot's 404; by slug, the DAL's wrapped NotFound, a 500 whose "error" names the step."""
        if "workspaceId" in query:
            return _error(404, BOT_LOOKUP, "NotFound")
        return _error(500, SOMETHING_WENT_WRONG, by_slug_step)

    def _create_folder(self, body: JsonBody, can_write: bool) -> tuple[int, JsonBody]:
        if not can_write:
            return _error(403, "You are not allowed to create on secretFolders", "PermissionDenied")
        project = self._project_by_id(body.get("projectId"))
        if project is None:  # the permission check finds no membership in it
            return _error(403, NOT_A_MEMBER, "Identity is not a member of the specified project")
        env, parent, name = body.get("environment"), body.get("path", "/"), body.get("name")
        if env not in project.environments or (project.id, env, parent) not in self.folders:
            return _error(404, FOLDER_NOT_FOUND, "NotFound")  # not recorded for folders; secrets answer so
        folder = f"{parent.rstrip('/')}/{name}"
        self.folders.add((project.id, str(env), folder))
        return 200, {"folder": self._folder_body(name, folder)}

    def _delete_folder(self, name: str, body: JsonBody, can_write: bool) -> tuple[int, JsonBody]:
        if not can_write:
            return _error(403, "You are not allowed to delete on secretFolders", "PermissionDenied")
        project = self._project_by_id(body.get("projectId"))
        folder = f"{str(body.get('path', '/')).rstrip('/')}/{name}"
        if project is None or (project.id, body.get("environment"), folder) not in self.folders:
            return _error(404, "Folder not found", "NotFound")
        env = body.get("environment")

        def inside(pid: str, e: Any, path: str) -> bool:  # the folder, its subfolders, their secrets
            return pid == project.id and e == env and (path == folder or path.startswith(folder + "/"))

        self.folders = {f for f in self.folders if not inside(*f)}
        self.secrets = {k: v for k, v in self.secrets.items() if not inside(*k[:3])}
        body_ = self._folder_body(name, folder)
        del body_["path"]
        return 200, {"folder": body_}

    @staticmethod
    def _folder_body(name: Any, path: str) -> JsonBody:
        ids = {k: str(uuid.uuid5(uuid.NAMESPACE_URL, path + k)) for k in ("id", "env", "parent")}
        return {
            "id": ids["id"], "name": name, "version": 1, "createdAt": NOW, "updatedAt": NOW,
            "envId": ids["env"], "parentId": ids["parent"], "isReserved": False, "path": path,
        }  # fmt: skip

    def _secret_body(self, project: Project, env: str, key: str, s: Secret) -> JsonBody:
        return {
            "id": s.id, "_id": s.id, "workspace": project.id, "environment": env, "version": s.version,
            "type": "shared", "secretKey": key, "secretValue": s.value, "secretComment": s.comment,
            "secretReminderNote": None, "secretReminderRepeatDays": None, "skipMultilineEncoding": False,
            "metadata": None, "createdAt": NOW, "updatedAt": NOW,
        }  # fmt: skip

    def _list(self, query: dict[str, str]) -> tuple[int, JsonBody]:
        project = self._project_by_query(query)
        env, path = query.get("environment", ""), query.get("secretPath", "/")
        if project is None:
            return self._no_project(query, "Failed to find project by slug")
        if env not in project.environments:
            return _error(404, FOLDER_NOT_FOUND, "Create secret")
        if (project.id, env, path) not in self.folders:
            return 200, {"secrets": [], "imports": []}
        hidden = query.get("viewSecretValue") == "false"  # the server then omits values
        found = [
            {**self._secret_body(project, env, k, s), "secretPath": path, "tags": []}
            | ({"secretValue": "<hidden-by-infisical>", "secretValueHidden": True} if hidden else {})
            for (pid, e, p, k), s in sorted(self.secrets.items(), key=lambda i: i[0])
            if (pid, e, p) == (project.id, env, path)
        ]
        # "imports" only when asked for (include_imports, default false), or for a missing folder
        return 200, {"secrets": found} | ({"imports": []} if query.get("include_imports") == "true" else {})

    def _get(self, key: str, query: dict[str, str]) -> tuple[int, JsonBody]:
        project = self._project_by_query(query)
        env, path = query.get("environment", ""), query.get("secretPath", "/")
        if project is None:
            return self._no_project(query, "Find project by slug")
        if (project.id, env, path) not in self.folders:
            return _error(404, FOLDER_NOT_FOUND, "Create secret")
        secret = self.secrets.get((project.id, env, path, key))
        if secret is None:
            return _error(404, "Secret not found", "NotFound")
        return 200, {"secret": {**self._secret_body(project, env, key, secret), "tags": []}}

    def _write(self, method: str, key: str, body: JsonBody, can_write: bool) -> tuple[int, JsonBody]:
        if "workspaceId" not in body:
            return _required("workspaceId")
        if method == "PATCH" and "secretValue" not in body:
            return _required("secretValue")
        verb = {"POST": "create", "PATCH": "edit", "DELETE": "delete"}[method]
        if not can_write:
            return _error(403, f"You are not allowed to {verb} on secrets", "PermissionDenied")
        project = self._project_by_id(body["workspaceId"])
        env, path = str(body.get("environment", "")), str(body.get("secretPath", "/"))
        if project is None:
            return _error(404, BOT_LOOKUP, "NotFound")
        if (project.id, env, path) not in self.folders:
            return _error(404, FOLDER_NOT_FOUND, FOLDER_NOT_FOUND_BY[method])
        where = (project.id, env, path, key)
        secret = self.secrets.get(where)
        if method == "POST":
            if secret is not None:
                return _error(400, "Secret already exist", "BadRequest")
            secret = self.secrets[where] = Secret(str(uuid.uuid4()), str(body.get("secretValue", "")))
            secret.comment = str(body.get("secretComment") or "")
            return 200, {"secret": self._secret_body(project, env, key, secret)}
        if secret is None:
            return _error(404, "Secret not found", "NotFound")
        if method == "DELETE":
            del self.secrets[where]
            return 200, {"secret": self._secret_body(project, env, key, secret)}
        secret.value, secret.version = str(body["secretValue"]), secret.version + 1
        if body.get("secretComment") is not None:
            secret.comment = str(body["secretComment"])
        new_key = body.get("newSecretName") or key
        del self.secrets[where]
        self.secrets[(project.id, env, path, new_key)] = secret
        return 200, {"secret": self._secret_body(project, env, new_key, secret)}


def _token_body(token: str, found: Token) -> JsonBody:
    return {"accessToken": token, "expiresIn": found.ttl, "accessTokenMaxTTL": found.max_ttl, "tokenType": "Bearer"}


def _route(path: str) -> str:
    return "/api/v3/secrets/raw/{name}" if path.startswith("/api/v3/secrets/raw/") else path


class _Handler(JsonHandler):
    double: InfisicalDouble

    def _serve(self) -> None:
        body = self.read_json() or {}
        if self.double.latency:
            time.sleep(self.double.latency)
        answer = self.double.handle(self.command, self.path, self.lower_headers(), body)
        if answer is None:  # a dropped connection
            self.close_connection = True
            self.connection.shutdown(2)
            return
        status, payload = answer
        retry_after = payload.pop("retryAfter", None)
        self.answer(status, payload, {"Retry-After": str(retry_after)} if retry_after is not None else None)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


class DoubleServer(LocalServer):
    """Runs an :class:`InfisicalDouble` on 127.0.0.1 in a background thread."""

    def __init__(self, double: InfisicalDouble) -> None:
        super().__init__(double, _Handler)


def main(argv: list[str]) -> int:
    """Serve a double as its own process (the e2e harness does): one line, the URL, on stdout.

    python tests/infisical_double.py PROJECT_SLUG WRITER_ID:SECRET VIEWER_ID:SECRET
    The writer may write; the viewer (the operator's identity) may only read. Stops on SIGTERM.
    """
    import signal
    import sys

    slug, writer, viewer = argv
    double = InfisicalDouble()
    writer_id, writer_secret = writer.split(":", 1)
    viewer_id, viewer_secret = viewer.split(":", 1)
    double.add_identity(writer_id, writer_secret)
    double.add_identity(viewer_id, viewer_secret, can_write=False)
    double.add_project(slug)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with DoubleServer(double):
        print(double.url, flush=True)
        stop.wait()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
