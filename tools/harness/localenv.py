"""The local stand-ins a real run needs besides the cluster (:mod:`.cluster`), shared by `make e2e`
and `make demo`: a Helm chart repository on loopback, and the real Infisical server of
../shared/infisical-server, reused when it runs, else started and afterwards stopped."""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import yaml

from floe_infra.clients.auth import Credentials
from floe_infra.clients.errors import NotFound
from floe_infra.clients.infisical import Connection, connect

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
CHART = SHARED / "reference" / "secrets-operator-chart"
SERVER = SHARED / "infisical-server"


@dataclass
class Infisical:
    """A project on an Infisical server, as a person with the writer identity sees it."""

    host: str
    project_slug: str
    writer: tuple[str, str]
    viewer: tuple[str, str]
    prefix: str
    short_ttl: tuple[str, str] | None = None  # a writer whose tokens live 3 s (max 5 s), if the server has one
    _conn: Connection | None = field(default=None, repr=False)

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = connect(Credentials(self.host, *self.writer))
        return self._conn

    def get(self, env: str, path: str, key: str) -> str | None:
        try:
            secret = self.conn.call(
                "e2e read",
                lambda c: c.secrets.get_secret_by_name(
                    secret_name=key,
                    project_slug=self.project_slug,
                    environment_slug=env,
                    secret_path=path,
                    expand_secret_references=False,
                    include_imports=False,
                    view_secret_value=True,
                ),
            )
        except NotFound:
            return None
        return str(secret.secretValue)

    def keys(self, env: str, path: str) -> set[str]:
        """The names of the secrets in one folder (values not asked for)."""
        project_id = self.conn.project_id(self.project_slug)
        listed = self.conn.call(
            "e2e list",
            lambda c: c.secrets.list_secrets(
                environment_slug=env,
                secret_path=path,
                project_id=project_id,
                view_secret_value=False,
                expand_secret_references=False,
                include_imports=False,
            ),
        )
        return {s.secretKey for s in listed.secrets}

    def set(self, env: str, path: str, key: str, value: str) -> None:
        """Create or overwrite, as a person does in the Infisical UI."""
        project_id = self.conn.project_id(self.project_slug)
        self.conn.ensure_folders(self.project_slug, env, path)
        args = {"secret_path": path, "environment_slug": env, "project_id": project_id, "secret_value": value}
        if self.get(env, path, key) is None:
            self.conn.call("e2e create", lambda c: c.secrets.create_secret_by_name(secret_name=key, **args))
        else:
            self.conn.call("e2e update", lambda c: c.secrets.update_secret_by_name(current_secret_name=key, **args))

    def delete(self, env: str, path: str, key: str) -> None:
        project_id = self.conn.project_id(self.project_slug)
        self.conn.call(
            "e2e delete",
            lambda c: c.secrets.delete_secret_by_name(
                secret_name=key, secret_path=path, environment_slug=env, project_id=project_id
            ),
        )

    @classmethod
    def from_credentials(cls, values: dict[str, str], prefix: str) -> Infisical:
        """From up.sh's credentials.env (the writer identity, and the viewer for the operator)."""
        return cls(
            values["INFISICAL_HOST"],
            values["INFISICAL_PROJECT_SLUG"],
            (values["INFISICAL_CLIENT_ID"], values["INFISICAL_CLIENT_SECRET"]),
            (values["INFISICAL_VIEWER_CLIENT_ID"], values["INFISICAL_VIEWER_CLIENT_SECRET"]),
            prefix,
            (values["INFISICAL_SHORT_TTL_CLIENT_ID"], values["INFISICAL_SHORT_TTL_CLIENT_SECRET"])
            if "INFISICAL_SHORT_TTL_CLIENT_ID" in values
            else None,
        )

    def stack_config(self, environment: str, context: str) -> list[tuple[str, str, bool]]:
        """(key, value, secret) of what a stack on this server needs: the viewer for the operator,
        the writer for the program's own writes (the README's two identities)."""
        return [
            ("floe:environment", environment, False),
            ("floe:kubeContext", context, False),
            ("floe:operatorClientId", self.viewer[0], True),
            ("floe:operatorClientSecret", self.viewer[1], True),
            ("infisical:clientId", self.writer[0], False),
            ("infisical:clientSecret", self.writer[1], True),
        ]

    def remove_prefix(self, env: str) -> None:
        """Delete this run's top folder, and so everything it wrote (absent: nothing to do)."""
        project_id = self.conn.project_id(self.project_slug)
        with contextlib.suppress(NotFound):
            self.conn.call(
                "e2e cleanup",
                lambda c: c.folders.delete_folder(
                    folder_id_or_name=self.prefix, environment_slug=env, project_id=project_id, path="/"
                ),
            )


def built_tools() -> Path | None:
    """The bin directory `make tools` built for this checkout; None while it is not (complete)."""
    out = subprocess.run([str(ROOT / "tools" / "build.sh"), "--dir"], capture_output=True, text=True, check=False)
    path = Path(out.stdout.strip())
    return path if out.returncode == 0 and (path.parent / "complete").exists() else None


class LocalEnvError(RuntimeError):
    """A stand-in could not start; the message says which and why."""


PROVIDERS = ("kubernetes", "random")
"""The provider plugins the program's SDKs declare (pulumi_<name>'s pulumi-plugin.json)."""


def declared_plugin(package: str) -> str:
    """The provider version a Pulumi SDK package declares: what a user's CLI downloads."""
    from importlib.resources import files

    return str(json.loads(files(f"pulumi_{package}").joinpath("pulumi-plugin.json").read_text())["version"])


def pulumi_home(tools_bin: Path, home: Path) -> dict[str, str]:
    """Environment for a ``PULUMI_HOME`` at ``home`` whose providers are the built ones, installed as
    a user's CLI installs what it downloads (``pulumi plugin install ... --file``), with providers on
    ``$PATH`` ignored: the engine then loads exactly those, and says nothing about ``$PATH``.
    Installed once per tools build (beside it, outside the work tree); ``home/plugins`` links there."""
    shared = tools_bin.parent / "pulumi-plugins"
    if not (shared / "complete").exists():
        scratch = Path(tempfile.mkdtemp(prefix="pulumi-plugins.", dir=tools_bin.parent))
        try:
            for name in PROVIDERS:
                result = subprocess.run(
                    [
                        str(tools_bin / "pulumi"),
                        "plugin",
                        "install",
                        "resource",
                        name,
                        declared_plugin(name),
                        "--file",
                        str(tools_bin / f"pulumi-resource-{name}"),
                        "--non-interactive",
                    ],
                    env={**os.environ, "PULUMI_HOME": str(scratch), "PULUMI_SKIP_UPDATE_CHECK": "true"},
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                if result.returncode != 0:
                    raise LocalEnvError(f"pulumi plugin install {name} failed: {result.stderr[-2000:]}")
            (scratch / "complete").touch()
            with contextlib.suppress(OSError):  # another run may have finished first: keep its copy
                scratch.rename(shared)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "plugins").exists():
        (home / "plugins").symlink_to(shared / "plugins")
    return {"PULUMI_HOME": str(home), "PULUMI_IGNORE_AMBIENT_PLUGINS": "true"}


# --- a Helm chart repository on loopback -------------------------------------------------------


def _helmignored(source: Path) -> Callable[[Path], bool]:
    """Whether ``helm package`` leaves a file out: the chart's ``.helmignore`` globs (a pattern
    ending in ``/`` names a directory; negations are not used by the charts served here)."""
    ignore = source / ".helmignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith(("#", "!"))]

    def ignored(path: Path) -> bool:
        rel = path.relative_to(source).as_posix()
        parts = rel.split("/")
        for pattern in patterns:
            if pattern.endswith("/"):
                if any(fnmatch.fnmatch(p, pattern[:-1]) for p in parts[:-1]):
                    return True
            elif fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(parts[-1], pattern):
                return True
        return False

    return ignored


def package_chart(source: Path) -> tuple[str, bytes, dict[str, Any]]:
    """The chart directory as ``helm package`` lays it out: NAME/... in a gzipped tar."""
    meta = yaml.safe_load((source / "Chart.yaml").read_text())
    ignored = _helmignored(source)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not ignored(path):
                info = tar.gettarinfo(str(path), arcname=f"{meta['name']}/{path.relative_to(source)}")
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return f"{meta['name']}-{meta['version']}.tgz", buf.getvalue(), meta


@contextlib.contextmanager
def chart_repository(root: Path, *charts: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving ``charts`` (the operator's by default) from
    ``root``; its URL."""
    entries: dict[str, list[dict[str, Any]]] = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for chart in charts or (CHART,):
        name, data, meta = package_chart(chart)
        (root / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        entries[meta["name"]] = [
            {**meta, "urls": [f"{url}/{name}"], "digest": digest, "created": "2026-07-21T00:00:00Z"}
        ]
    index = {"apiVersion": "v1", "entries": entries, "generated": "2026-07-21T00:00:00Z"}
    (root / "index.yaml").write_text(yaml.safe_dump(index))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url + "/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- the real Infisical server -----------------------------------------------------------------


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def server_state() -> Path:
    return Path(os.environ.get("INFISICAL_STATE", Path.home() / ".cache" / "floe-infisical"))


def server_running(state: Path) -> bool:
    """Whether the server of ``state`` runs (its recorded pid still runs Infisical's backend)."""
    try:
        pid = int((state / "backend.pid").read_text())
        return b"dist/main.mjs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def server_env(state: Path, node_env: str | None = None) -> dict[str, str]:
    # Rate limits off (development) unless asked for: the e2e and the demo make more requests a
    # minute per route than production's 40 allow one address; tests/e2e/test_rate_limits.py and
    # bench/operator_load.py run it in production.
    return {
        **os.environ,
        "INFISICAL_STATE": str(state),
        "INFISICAL_NODE_ENV": node_env or os.environ.get("INFISICAL_NODE_ENV", "development"),
    }


def server_node_env(state: Path) -> str | None:
    """The NODE_ENV the running server of ``state`` was started with; None if it does not run."""
    if not server_running(state):
        return None
    pid = int((state / "backend.pid").read_text())
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"NODE_ENV=")]
    return found[0] if found else None


def start_server(state: Path, output: int | None = subprocess.PIPE, node_env: str | None = None) -> dict[str, str]:
    """Runs up.sh (builds once, starts what is not running); the credentials it wrote.
    ``output=None`` lets its progress through to the terminal. With ``node_env``, the server must
    run in that mode afterwards (a server that ran already keeps its own)."""
    if not (SERVER / "up.sh").exists():
        raise LocalEnvError(f"the Infisical server is not at {SERVER} (../shared)")
    result = subprocess.run(
        [str(SERVER / "up.sh")],
        env=server_env(state, node_env),
        # never the caller's: started with fd 0 closed (as CI may start a run), Redis 7.0 takes it
        # for its module pipe and crashes ("Error registering the readable event")
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=output,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise LocalEnvError(
            f"the Infisical server did not start ({SERVER / 'up.sh'} exited {result.returncode})"
            + (f":\n{result.stderr[-4000:]}" if result.stderr else "")
        )
    if node_env is not None and (running := server_node_env(state)) != node_env:  # up.sh kept a running one
        raise LocalEnvError(
            f"the Infisical server of {state} runs in {running} mode, not {node_env}: "
            f"run {SERVER / 'down.sh'}, then {SERVER / 'up.sh'}"
        )
    return env_file(Path(result.stdout.strip().splitlines()[-1]))


def stop_server(state: Path) -> None:
    subprocess.run([str(SERVER / "down.sh")], env=server_env(state), capture_output=True, timeout=120, check=False)


@dataclass(frozen=True)
class Served:
    """One request the server logged, and the status it answered (None: not answered yet)."""

    at: float  # seconds since the epoch
    method: str
    url: str
    status: int | None


def served_since(log: Path, offset: int) -> list[Served]:
    """The requests the server's log holds after its first ``offset`` bytes (pino: one JSON line
    per incoming request and per completed one, joined by reqId)."""
    started: dict[str, tuple[float, str, str]] = {}
    answered: dict[str, int] = {}
    with log.open("rb") as f:
        f.seek(offset)
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            req_id = entry.get("reqId")
            if not req_id:
                continue
            if "req" in entry:
                started[req_id] = (entry["time"] / 1000, entry["req"].get("method", ""), entry["req"].get("url", ""))
            elif "res" in entry:
                answered[req_id] = int(entry["res"].get("statusCode", 0))
    return [Served(at, method, url, answered.get(req_id)) for req_id, (at, method, url) in started.items()]


@contextlib.contextmanager
def server_in_production() -> Iterator[Path]:
    """The local server, (re)started with its rate limits on (production) while the block runs, then
    as it was before (stopped if it did not run); the path of its log (one JSON line per request
    and answer). It holds the server alone meanwhile (:func:`server_turn`): no other module of
    `make e2e`'s groups, nor a bench, talks to it or restarts it."""
    state = server_state()
    with server_turn(alone=True):
        before = server_node_env(state)
        try:
            if before != "production":
                stop_server(state)
                start_server(state, node_env="production")
            yield state / "backend.log"
        finally:
            if before != "production":
                try:
                    stop_server(state)
                finally:
                    if before is not None:  # it ran before: as it was, or say that it is not
                        start_server(state, node_env=before)


@contextlib.contextmanager
def infisical_server() -> Iterator[dict[str, str]]:
    """The real server's credentials while the block runs; stopped after it if this started it."""
    state = server_state()
    started = not server_running(state)
    credentials = start_server(state)
    try:
        yield credentials
    finally:
        if started:
            stop_server(state)


_TURN = threading.local()  # the turn this thread holds: (turnstile, turn) lock files, and whether alone


def _take_turn(alone: bool) -> tuple[IO[str], IO[str]]:
    state = server_state()
    state.mkdir(parents=True, exist_ok=True)
    turnstile, turn = (state / "turnstile.lock").open("a"), (state / "turn.lock").open("a")
    try:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(turn, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
    except BaseException:
        turnstile.close()
        turn.close()
        raise
    return turnstile, turn


@contextlib.contextmanager
def server_turn(*, alone: bool) -> Iterator[None]:
    """A turn at the local server of :func:`server_state`, for processes that share it (`make e2e`
    runs two groups of modules at once): many may hold a shared turn; ``alone`` waits until no one
    holds one, and keeps the others out while the block runs (:func:`server_in_production` restarts
    the server). A waiting ``alone`` goes first: it holds the turnstile, which a new shared turn
    passes through (flock(2) alone would let shared turns overtake it for ever). Within a thread a
    turn nests: a shared one asked for inside any turn is already held; an ``alone`` one inside a
    shared one gives that up, waits its turn alone, and takes the shared one back after. Closing a
    lock file gives its turn up, and so does a process's end, however it ends."""
    held: tuple[tuple[IO[str], IO[str]], bool] | None = getattr(_TURN, "held", None)
    if held is not None and (held[1] or not alone):
        yield
        return
    if held is not None:
        _give_up_turn()
    _TURN.held = (_take_turn(alone), alone)
    try:
        yield
    finally:
        _give_up_turn()  # what this thread holds now: a nested turn may have replaced it
        if held is not None:
            _TURN.held = (_take_turn(held[1]), held[1])


def _give_up_turn() -> None:
    held = getattr(_TURN, "held", None)
    _TURN.held = None
    if held is not None:
        for f in held[0]:
            f.close()


class InfisicalAdminError(LocalEnvError):
    """The server refused an admin call: its status and answer."""

    def __init__(self, what: str, status: int, answer: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {answer[:500]}")
        self.status = status
        self.answer = answer


@dataclass
class InfisicalAdmin:
    """The local server's organisation admin (the admin machine identity of admin.env), for what a
    person does in Infisical's UI: machine identities, their auth methods and project memberships."""

    host: str
    org_id: str
    project_id: str
    client: tuple[str, str]
    _token: str | None = field(default=None, repr=False)

    @classmethod
    def from_state(cls, state: Path | None = None) -> InfisicalAdmin:
        values = env_file((state or server_state()) / "admin.env")
        return cls(
            values["INFISICAL_HOST"],
            values["INFISICAL_ORG_ID"],
            values["INFISICAL_PROJECT_ID"],
            (values["INFISICAL_ADMIN_CLIENT_ID"], values["INFISICAL_ADMIN_CLIENT_SECRET"]),
        )

    def _request(self, method: str, path: str, body: dict[str, Any] | None, token: str | None) -> Any:
        headers = {
            **({"Content-Type": "application/json"} if body is not None else {}),
            **({"Authorization": f"Bearer {token}"} if token else {}),
        }
        request = urllib.request.Request(
            self.host + path,
            method=method,
            headers=headers,
            data=json.dumps(body).encode() if body is not None else None,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise InfisicalAdminError(f"{method} {path}", exc.code, exc.read().decode(errors="replace")) from None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._token is None:
            login = {"clientId": self.client[0], "clientSecret": self.client[1]}
            self._token = str(self._request("POST", "/api/v1/auth/universal-auth/login", login, None)["accessToken"])
        return self._request(method, path, body, self._token)

    def create_identity(self, name: str) -> str:
        """A new machine identity with no organisation role (it gets a project role of its own)."""
        body = {"name": name, "organizationId": self.org_id, "role": "no-access"}
        return str(self.call("POST", "/api/v1/identities", body)["identity"]["id"])

    def delete_identity(self, identity_id: str) -> None:
        with contextlib.suppress(InfisicalAdminError):
            self.call("DELETE", f"/api/v1/identities/{identity_id}")

    def add_to_project(self, identity_id: str, role: str) -> None:
        self.call("POST", f"/api/v2/workspace/{self.project_id}/identity-memberships/{identity_id}", {"role": role})

    def kubernetes_identity(
        self, name: str, *, host: str, ca: str, reviewer_jwt: str, namespace: str, service_account: str
    ) -> str:
        """A new identity, a viewer of the project, that logs in with Kubernetes Auth: a token of
        ``namespace``/``service_account``, which the server checks with TokenReview at ``host``."""
        identity = self.create_identity(name)
        try:
            self.add_to_project(identity, "viewer")
            self.kubernetes_auth(
                identity,
                kubernetesHost=host,
                caCert=ca,
                tokenReviewerJwt=reviewer_jwt,
                allowedNamespaces=namespace,
                allowedNames=service_account,
                allowedAudience="",
            )
        except InfisicalAdminError:
            self.delete_identity(identity)
            raise
        return identity

    def identity_client_secrets(self, identity_id: str) -> list[dict[str, Any]]:
        """An identity's Universal Auth client secrets as Infisical lists them (ids, uses, revoked)."""
        listed = self.call("GET", f"/api/v1/auth/universal-auth/identities/{identity_id}/client-secrets")
        return list(listed["clientSecretData"])

    def client_secrets(self, state: Path | None = None) -> set[str]:
        """Every client secret of the local server's identities (credentials.env and admin.env)."""
        state = state or server_state()
        values = {**env_file(state / "credentials.env"), **env_file(state / "admin.env")}
        return {v for k, v in values.items() if k.endswith("CLIENT_SECRET") and v}

    def kubernetes_auth(self, identity_id: str, *, method: str = "POST", **settings: Any) -> None:
        """Attach (POST) or change (PATCH) an identity's Kubernetes Auth: ``kubernetesHost``,
        ``caCert``, ``tokenReviewerJwt``, ``allowedNamespaces``, ``allowedNames``, ``allowedAudience``."""
        self.call(method, f"/api/v1/auth/kubernetes-auth/identities/{identity_id}", settings)
