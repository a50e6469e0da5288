"""The e2e harness: the real Pulumi CLI and providers (``make tools``) against a local control
plane (tools/cluster.py), the operator chart from a local chart repository, the real Infisical
server (../shared/infisical-server) and the real Infisical operator, run out of cluster.

Everything binds to 127.0.0.1 and is stopped by the fixture that started it. Without the built
tools or ``../shared`` the tests skip and say which is missing; ``make e2e`` sets FLOE_E2E_STRICT=1,
which fails them instead. Logs of the processes it starts go to ``$FLOE_E2E_ARTIFACTS`` (out/e2e).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from cluster import LocalCluster  # noqa: E402
from localenv import (  # noqa: E402
    CHART,
    SERVER,
    Infisical,
    InfisicalAdmin,
    LocalEnvError,
    built_tools,
    chart_repository,
    env_file,
    infisical_server,
    pulumi_home,
    server_state,
)

ARTIFACTS = Path(os.environ.get("FLOE_E2E_ARTIFACTS", ROOT / "out" / "e2e"))
PASSPHRASE = "floe-e2e-passphrase"


FOLLOW = 45  # seconds a change may take to reach a Secret: the resync interval, plus the operator's backoff
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = FOLLOW) -> tuple[T, float]:
    """The first truthy result of ``probe`` and the seconds it took; fails naming ``what``."""
    start = time.monotonic()
    while True:
        result = probe()
        if result:
            return result, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not within {timeout:.0f}s", pytrace=False)
        time.sleep(0.5)


@contextlib.contextmanager
def polling(probe: Callable[[], T], every: float = 0.2) -> Iterator[list[T]]:
    """``probe()`` every ``every`` seconds in a thread while the block runs (a `pulumi up`, say);
    the list of what each call gave, complete once the block has ended."""
    seen: list[T] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(probe())
            time.sleep(every)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()


def rolled_out_in(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The Deployment once its current template runs everywhere (kwok makes the pods Ready)."""
    out = cluster.kubectl("get", "deployment", name, "-n", namespace, "-o", "json", "--ignore-not-found")
    if not out.strip():
        return None
    d: dict[str, Any] = json.loads(out)
    s = d.get("status", {})
    done = (
        s.get("observedGeneration") == d["metadata"]["generation"]
        and s.get("updatedReplicas") == 1
        and s.get("readyReplicas") == 1
        and s.get("replicas") == 1
    )
    return d if done else None


def ensure_namespaces(cluster: LocalCluster, *names: str) -> None:
    """Create those of ``names`` the cluster lacks. A stack other than the first modules' dev stacks
    uses them with `floe:createNamespaces false`: the namespaces those stacks made outlive them
    (retained on delete), labelled as theirs, and a second stack may not take their labels."""
    present = cluster.kubectl("get", "namespaces", "-o", "name").split()
    for namespace in names:
        if f"namespace/{namespace}" not in present:
            cluster.kubectl("create", "namespace", namespace)


def stop_operator(cluster: LocalCluster, log: Path | None, keep_as: str) -> None:
    """Stop the operator a module started, keeping its log as ``$FLOE_E2E_ARTIFACTS/keep_as``."""
    cluster.stop_operator()
    keep_log(log, keep_as)


def keep_log(log: Path | None, keep_as: str) -> None:
    """A controller's log, kept as ``$FLOE_E2E_ARTIFACTS/keep_as``."""
    if log is not None and log.exists():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / keep_as)


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tools or ../shared are absent; under ``make e2e`` (FLOE_E2E_STRICT=1) fail."""
    if os.environ.get("FLOE_E2E_STRICT") == "1":
        pytest.fail(f"{reason} (make e2e runs every step: it does not skip)", pytrace=False)
    pytest.skip(reason)


# The order the modules run in: the lifecycle first, on a cluster no stack has touched (its first
# step previews on an empty cluster; the CRDs and namespaces a stack made outlive it).
ORDER = (
    "test_lifecycle.py",
    "test_sync.py",
    "test_eso.py",
    "test_kubernetes_auth.py",
    "test_managed_identities.py",
    "test_prod_stack.py",
    "test_generated.py",
    "test_rate_limits.py",
    "test_faults.py",
    "test_project_gone.py",
    "test_demo.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: ORDER.index(item.path.name) if item.path.name in ORDER else len(ORDER))


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    path = built_tools()
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


@pytest.fixture(scope="session")
def chart_repo(tmp_path_factory: pytest.TempPathFactory, tools_bin: Path) -> Iterator[str]:
    """The operator's chart and ESO's (as tools/build.sh packs it from its module), on loopback."""
    if not CHART.is_dir():
        unavailable(f"the operator chart is not at {CHART} (../shared/reference)")
    eso_chart = tools_bin / "eso-chart" / "external-secrets"
    with chart_repository(tmp_path_factory.mktemp("charts"), CHART, eso_chart) as url:
        yield url


# --- Infisical: the real server ------------------------------------------------------------


@contextlib.contextmanager
def _real_server() -> Iterator[dict[str, str]]:
    try:
        with infisical_server() as credentials:
            yield credentials
    except LocalEnvError as exc:
        if not SERVER.exists():
            unavailable(str(exc))
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def infisical() -> Iterator[Infisical]:
    """The real Infisical server (../shared), or the one ``FLOE_E2E_INFISICAL_ENV`` names (a file
    with INFISICAL_HOST, INFISICAL_PROJECT_SLUG, INFISICAL_CLIENT_ID/_SECRET for the writer and
    INFISICAL_VIEWER_CLIENT_ID/_SECRET for the operator). The run writes under a folder of its own."""
    prefix = f"e2e-{secrets.token_hex(4)}"
    given = os.environ.get("FLOE_E2E_INFISICAL_ENV")
    with contextlib.ExitStack() as stack:
        values = env_file(Path(given)) if given else stack.enter_context(_real_server())
        server = Infisical.from_credentials(values, prefix)
        try:
            yield server
        finally:
            server.remove_prefix("dev")


@pytest.fixture(scope="session")
def infisical_admin(infisical: Infisical) -> InfisicalAdmin:
    """The local server's organisation admin (admin.env), for what a person does in Infisical's UI;
    a test that needs it skips on another server (FLOE_E2E_INFISICAL_ENV)."""
    if os.environ.get("FLOE_E2E_INFISICAL_ENV"):
        pytest.skip("needs the admin of the local Infisical server (admin.env), not FLOE_E2E_INFISICAL_ENV's server")
    if not (server_state() / "admin.env").exists():
        unavailable(f"the local Infisical server's {server_state() / 'admin.env'} is missing")
    return InfisicalAdmin.from_state()


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
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            errors = "\n".join(line for line in result.stdout.splitlines() if "error" in line)[-4000:]
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n--- errors\n{errors}"
                f"\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

    def floe(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The floe CLI in the project directory, with this environment (its PATH has this pulumi)."""
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "floe"), *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

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

    def outputs_of(self, kind: str) -> dict[str, Any]:
        """The outputs of the stack's one ``pulumi-python:dynamic/infisical:<kind>`` from its state,
        secrets decrypted (``--show-secrets`` keeps them as ``{<signature>, "plaintext": <JSON>}``)."""
        state = json.loads(self("stack", "export", "--show-secrets").stdout)
        (found,) = [
            r["outputs"]
            for r in state["deployment"]["resources"]
            if r["type"] == f"pulumi-python:dynamic/infisical:{kind}"
        ]
        return {
            k: json.loads(v["plaintext"]) if isinstance(v, dict) and "plaintext" in v else v for k, v in found.items()
        }


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
        **pulumi_home(tools_bin, tmp / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "KUBECONFIG": str(kubeconfig),
        "NO_COLOR": "1",
    }


def killed_up(pulumi: Pulumi, until: Callable[[], bool], what: str, *args: str, timeout: float = 120) -> None:
    """`pulumi up ARGS` killed with SIGKILL (its whole process group, and the plugins it started)
    as soon as ``until()`` holds, as a lost machine or an out-of-memory kill would end it."""
    up = subprocess.Popen(
        [
            str(pulumi.bin_dir / "pulumi"),
            "up",
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--stack",
            pulumi.stack,
            *args,
        ],
        cwd=pulumi.project,
        env=pulumi.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert up.poll() is None, f"`pulumi up` ended before {what}"
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.2)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
        kill_orphaned_plugins(pulumi)


def kill_orphaned_plugins(pulumi: Pulumi) -> None:
    """The engine starts its plugins in process groups of their own: killed, it leaves them running
    (the random provider, the dynamic provider and its shell wrapper). They are this test's: their
    command lines name its project or its PULUMI_HOME."""
    ours = (str(pulumi.project), pulumi.env["PULUMI_HOME"])
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if proc.name.isdigit() and int(proc.name) != os.getpid() and any(o in cmdline for o in ours):
                found.add(int(proc.name))
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                wrapper = Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace")
                if "pulumi-resource-pulumi-python" in wrapper:
                    found.add(parent)
        except (OSError, ValueError, IndexError):
            continue
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
