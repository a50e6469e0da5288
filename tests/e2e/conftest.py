"""The e2e harness: the real Pulumi CLI and providers (``make tools``) against a local control
plane (tools/cluster.py), the operator chart from a local chart repository, the real Infisical
server (../shared/infisical-server) and the real Infisical operator, run out of cluster.

Everything binds to 127.0.0.1 and is stopped by the fixture that started it. Without the built
tools or ``../shared`` the tests skip and say which is missing; ``make e2e`` sets FLOE_E2E_STRICT=1,
which fails them instead. Logs of the processes it starts go to ``$FLOE_E2E_ARTIFACTS`` (out/e2e).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from cluster import LocalCluster  # noqa: E402

from floe_infra.clients.infisical import Connection, Credentials, NotFound, connect  # noqa: E402

CHART = ROOT.parent / "shared" / "reference" / "secrets-operator-chart"
SERVER = ROOT.parent / "shared" / "infisical-server"
ARTIFACTS = Path(os.environ.get("FLOE_E2E_ARTIFACTS", ROOT / "out" / "e2e"))
PASSPHRASE = "floe-e2e-passphrase"


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tools or ../shared are absent; under ``make e2e`` (FLOE_E2E_STRICT=1) fail."""
    if os.environ.get("FLOE_E2E_STRICT") == "1":
        pytest.fail(f"{reason} (make e2e runs every step: it does not skip)", pytrace=False)
    pytest.skip(reason)


def _tools_bin() -> Path | None:
    out = subprocess.run([str(ROOT / "tools" / "build.sh"), "--dir"], capture_output=True, text=True, check=False)
    path = Path(out.stdout.strip())
    return path if out.returncode == 0 and (path.parent / "complete").exists() else None


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    path = _tools_bin()
    if path is None:
        unavailable("the Go tools are not built for this checkout: run `make tools` (see README)")
    return path


@pytest.fixture(scope="session")
def cluster(tools_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), tools_bin)
    try:
        local.up()
        yield local
    finally:
        local.down()


# --- a Helm chart repository on loopback -------------------------------------------------------


def package_chart(source: Path) -> tuple[str, bytes, dict[str, Any]]:
    """The chart directory as ``helm package`` lays it out: NAME/... in a gzipped tar."""
    meta = yaml.safe_load((source / "Chart.yaml").read_text())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                info = tar.gettarinfo(str(path), arcname=f"{meta['name']}/{path.relative_to(source)}")
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return f"{meta['name']}-{meta['version']}.tgz", buf.getvalue(), meta


@contextlib.contextmanager
def chart_repository(root: Path) -> Iterator[str]:
    """A Helm chart repository on 127.0.0.1 serving the operator chart from ``root``; its URL."""
    name, data, meta = package_chart(CHART)
    (root / name).write_bytes(data)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    digest = hashlib.sha256(data).hexdigest()
    entry = {**meta, "urls": [f"{url}/{name}"], "digest": digest, "created": "2026-07-21T00:00:00Z"}
    index = {"apiVersion": "v1", "entries": {meta["name"]: [entry]}, "generated": "2026-07-21T00:00:00Z"}
    (root / "index.yaml").write_text(yaml.safe_dump(index))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url + "/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHART.is_dir():
        unavailable(f"the operator chart is not at {CHART} (../shared/reference)")
    with chart_repository(tmp_path_factory.mktemp("charts")) as url:
        yield url


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- Infisical: the real server ------------------------------------------------------------


@dataclass
class Infisical:
    host: str
    project_slug: str
    writer: tuple[str, str]
    viewer: tuple[str, str]
    prefix: str
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
                    secret_name=key, project_slug=self.project_slug, environment_slug=env, secret_path=path,
                    expand_secret_references=False, include_imports=False, view_secret_value=True,
                ),
            )
        except NotFound:
            return None
        return str(secret.secretValue)

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


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _backend_running(state: Path) -> bool:
    """Whether the server of ``state`` runs (its recorded pid still runs Infisical's backend)."""
    try:
        pid = int((state / "backend.pid").read_text())
        return b"dist/main.mjs" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def infisical_server() -> Iterator[dict[str, str]]:
    """The real Infisical server of ../shared/infisical-server (its credentials): reused when one
    runs, else started, with rate limits off (INFISICAL_NODE_ENV=development: the suite makes more
    requests a minute per route than production's 40 allow), and stopped afterwards."""
    if not (SERVER / "up.sh").exists():
        unavailable(f"the Infisical server is not at {SERVER} (../shared)")
    state = Path(os.environ.get("INFISICAL_STATE", Path.home() / ".cache" / "floe-infisical"))
    env = {**os.environ, "INFISICAL_STATE": str(state),
           "INFISICAL_NODE_ENV": os.environ.get("INFISICAL_NODE_ENV", "development")}
    started = not _backend_running(state)
    result = subprocess.run([str(SERVER / "up.sh")], env=env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"the Infisical server did not start ({SERVER / 'up.sh'} exited {result.returncode}):\n"
                    f"{result.stderr[-4000:]}", pytrace=False)
    try:
        yield _env_file(Path(result.stdout.strip().splitlines()[-1]))
    finally:
        if started:
            subprocess.run([str(SERVER / "down.sh")], env=env, capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def infisical() -> Iterator[Infisical]:
    """The real Infisical server (../shared), or the one ``FLOE_E2E_INFISICAL_ENV`` names (a file
    with INFISICAL_HOST, INFISICAL_PROJECT_SLUG, INFISICAL_CLIENT_ID/_SECRET for the writer and
    INFISICAL_VIEWER_CLIENT_ID/_SECRET for the operator). The run writes under a folder of its own."""
    prefix = f"e2e-{secrets.token_hex(4)}"
    env_file = os.environ.get("FLOE_E2E_INFISICAL_ENV")
    with contextlib.ExitStack() as stack:
        values = _env_file(Path(env_file)) if env_file else stack.enter_context(infisical_server())
        server = Infisical(
            values["INFISICAL_HOST"], values["INFISICAL_PROJECT_SLUG"],
            (values["INFISICAL_CLIENT_ID"], values["INFISICAL_CLIENT_SECRET"]),
            (values["INFISICAL_VIEWER_CLIENT_ID"], values["INFISICAL_VIEWER_CLIENT_SECRET"]),
            prefix,
        )
        try:
            yield server
        finally:
            server.remove_prefix("dev")


# --- Pulumi ------------------------------------------------------------------------------------


@dataclass
class Pulumi:
    """The real CLI in a project directory, with a file backend and an isolated PULUMI_HOME."""

    bin_dir: Path
    project: Path
    env: dict[str, str]
    stack: str = "dev"

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "pulumi"), *args, "--non-interactive", "--stack", self.stack],
            cwd=self.project, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
                f"\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

    def config_set(self, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        self("config", "set", *(["--secret"] if secret else []), *(["--path"] if path else []), key, value)

    def up(self) -> subprocess.CompletedProcess[str]:
        return self("up", "--yes", "--skip-preview")

    def preview_json(self, *args: str) -> dict[str, Any]:
        result = self("preview", "--json", *args)
        return dict(json.loads(result.stdout))

    def state(self) -> str:
        """The raw checkpoint file of the file backend, as it sits on disk."""
        backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
        return (backend / ".pulumi" / "stacks" / "floe" / f"{self.stack}.json").read_text()

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self("stack", "output", "--json", "--show-secrets").stdout))


def make_project(tmp: Path, tools_bin: Path, kubeconfig: Path, manifest: str) -> Path:
    """A copy of the program (Pulumi.yaml, __main__.py and the runtime virtualenv) with ``manifest``."""
    project = tmp / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((ROOT / name).read_text())
    (project / "venv").symlink_to(ROOT / "venv")
    (project / "manifest.yaml").write_text(manifest)
    return project


def pulumi_env(tmp: Path, tools_bin: Path, kubeconfig: Path) -> dict[str, str]:
    backend = tmp / "backend"
    backend.mkdir()
    scratch = tmp / "scratch"  # the Kubernetes provider leaves a kubeconfig file per Helm operation
    scratch.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "HOME", "USER")}
    return {
        **keep,
        "TMPDIR": str(scratch),
        "PATH": f"{tools_bin}:{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        "PULUMI_HOME": str(tmp / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "KUBECONFIG": str(kubeconfig),
        "NO_COLOR": "1",
    }
