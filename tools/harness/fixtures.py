"""The e2e suite's pytest side: its fixtures and hooks (which tests/e2e/conftest.py re-exports),
and what a module does around the shared cluster: namespaces, the operator's log, a skip or a
failure when a tool or ../shared is absent.

Everything binds to 127.0.0.1 and is stopped by the fixture that started it. Without the built
tools or ``../shared`` the tests skip and say which is missing; ``make e2e`` sets FLOE_E2E_STRICT=1,
which fails them instead. Logs of the processes it starts go to ``$FLOE_E2E_ARTIFACTS`` (out/e2e).
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import shutil
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .cluster import LocalCluster
from .localenv import (
    CHART,
    ROOT,
    SERVER,
    Infisical,
    InfisicalAdmin,
    LocalEnvError,
    built_tools,
    chart_repository,
    env_file,
    infisical_server,
    server_state,
    server_turn,
)
from .stack import Pulumi

ARTIFACTS = Path(os.environ.get("FLOE_E2E_ARTIFACTS", ROOT / "out" / "e2e"))


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


# The modules, in the order they run, and the group each runs in. `make e2e` (tools/e2e.py) runs
# the two groups at once, each a pytest process with a cluster of its own, against the one
# Infisical server. Group "a" begins with the lifecycle, on a cluster no stack has touched (its
# first step previews on an empty cluster; the CRDs and namespaces a stack made outlive it). Group
# "b" holds every module that makes identities in the organisation, and the one that lists them
# (managed identities: it would see the other group's), and ends with the rate-limit module, which
# has the server to itself while it runs in production mode (localenv.server_in_production).
ORDER = (
    ("test_lifecycle.py", "a"),
    ("test_sync.py", "a"),
    ("test_eso.py", "a"),
    ("test_generated.py", "a"),
    ("test_project_gone.py", "a"),
    ("test_kubernetes_auth.py", "b"),
    ("test_managed_identities.py", "b"),
    ("test_prod_stack.py", "b"),
    ("test_faults.py", "b"),
    ("test_demo.py", "b"),
    ("test_rate_limits.py", "b"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    modules = [module for module, _ in ORDER]
    items.sort(key=lambda item: modules.index(item.path.name) if item.path.name in modules else len(modules))


_CLUSTER = pytest.StashKey[LocalCluster]()


@pytest.fixture(scope="module", autouse=True)
def turn_at_the_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module's turn at the shared Infisical server (shared with the other group's modules), for
    as long as its stacks live. The controllers it ran on the cluster do not outlive the turn, even
    when its own teardown failed half-way: they would read from the server while the rate-limit
    module counts its reads."""
    with server_turn(alone=False):
        try:
            yield
        finally:
            cluster = request.config.stash.get(_CLUSTER, None)
            if cluster is not None:
                cluster.stop_eso()
                cluster.stop_operator()


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


_PLAIN = (dict, list, set, str, int, float, bool, type(None))


@dataclass
class _Saved:
    """A step's stack as the step found it: the files an `up` reads, and the plain data (values,
    canaries, the operator's settings) of the module's wrapper that holds it."""

    pulumi: Pulumi
    inputs: dict[Path, str | None]
    holder: object | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def put_back(self) -> str:
        for name, value in self.fields.items():
            setattr(self.holder, name, value)
        return self.pulumi.restore(self.inputs)


def _saved_stacks(request: pytest.FixtureRequest) -> list[_Saved]:
    """The stacks of a step's fixtures (a Pulumi, or a module's wrapper holding one); a stack the
    step makes itself is not among them, and needs no restoring: nothing after the step uses it."""
    found: list[_Saved] = []
    for name in request.fixturenames:
        if name in ("request", "restored_after_a_failure"):
            continue
        value = request.getfixturevalue(name)
        pulumi = value if isinstance(value, Pulumi) else getattr(value, "pulumi", None)
        if not isinstance(pulumi, Pulumi) or any(s.pulumi is pulumi for s in found):
            continue
        holder = None if value is pulumi else value
        plain = {k: copy.deepcopy(v) for k, v in vars(holder).items() if isinstance(v, _PLAIN)} if holder else {}
        found.append(_Saved(pulumi, pulumi.inputs(), holder, plain))
    return found


@pytest.fixture(autouse=True)
def restored_after_a_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A step that fails puts the stacks of its fixtures back as it found them (their manifest,
    stack config and wrapper's data, and an `up` to them), so that the steps after it start where
    they would have: one failure does not turn the rest of the module red. Nothing runs when the
    step passes; a stack the step destroyed stays destroyed; ``@pytest.mark.no_restore`` (a module
    whose steps change the program itself) opts out."""
    if request.node.get_closest_marker("no_restore"):
        yield
        return
    saved = _saved_stacks(request)
    yield
    if request.node.stash.get(_FAILED, False):
        for stack in saved:
            request.node.add_report_section("teardown", "restore", f"stack {stack.pulumi.stack}: {stack.put_back()}")


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    path = built_tools()
    if path is None:
        unavailable("the Go tools are not built for this checkout: run `make tools` (see README)")
    return path


@pytest.fixture(scope="session")
def cluster(
    tools_bin: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), tools_bin)
    request.config.stash[_CLUSTER] = local
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
    # The local server's start (up.sh) and stop take a turn, as its use does: never while it runs
    # in production mode for the other group's rate-limit module.
    with contextlib.ExitStack() as stack:
        with server_turn(alone=False):
            values = env_file(Path(given)) if given else stack.enter_context(_real_server())
        server = Infisical.from_credentials(values, prefix)
        try:
            yield server
        finally:
            with server_turn(alone=False):
                try:
                    server.remove_prefix("dev")
                finally:
                    stack.close()


@pytest.fixture(scope="session")
def infisical_admin(infisical: Infisical) -> InfisicalAdmin:
    """The local server's organisation admin (admin.env), for what a person does in Infisical's UI;
    a test that needs it skips on another server (FLOE_E2E_INFISICAL_ENV)."""
    if os.environ.get("FLOE_E2E_INFISICAL_ENV"):
        pytest.skip("needs the admin of the local Infisical server (admin.env), not FLOE_E2E_INFISICAL_ENV's server")
    if not (server_state() / "admin.env").exists():
        unavailable(f"the local Infisical server's {server_state() / 'admin.env'} is missing")
    return InfisicalAdmin.from_state()
