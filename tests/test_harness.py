"""The e2e harness's own promise: a step that fails puts the stacks of its fixtures back as it
found them (manifest, stack config, the module wrapper's data, an `up`), so the steps after it
start where they would have; a passing step costs nothing; a stack the step destroyed stays
destroyed. Run on generated modules with a stand-in `pulumi` that records its commands."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from harness.fixtures import ALONE, ORDER  # noqa: E402
from harness.localenv import server_turn  # noqa: E402

MODULE = """
import dataclasses
import pytest
from harness import Pulumi

@dataclasses.dataclass
class Wrapper:
    pulumi: Pulumi
    values: dict

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    (project / "manifest.yaml").write_text("baseline\\n")
    (project / "Pulumi.dev.yaml").write_text("config: {a: 1}\\n")
    env = {"PATH": "/usr/bin:/bin", "PULUMI_HOME": str(project / "home")}
    return Wrapper(Pulumi(BIN, project, env), {"user": "u1"})

def test_1_passes_and_changes_the_manifest(stack):
    (stack.pulumi.project / "manifest.yaml").write_text("from step 1\\n")
    stack.values["user"] = "u2"

def test_2_fails_half_way(stack):
    (stack.pulumi.project / "manifest.yaml").write_text("half-applied\\n")
    (stack.pulumi.project / "Pulumi.dev.yaml").write_text("config: {a: 2}\\n")
    stack.values["user"] = "half-applied"
    assert False, "step 2 failed"

def test_3_starts_where_step_2_started(stack):
    assert (stack.pulumi.project / "manifest.yaml").read_text() == "from step 1\\n"
    assert (stack.pulumi.project / "Pulumi.dev.yaml").read_text() == "config: {a: 1}\\n"
    assert stack.values == {"user": "u2"}
"""

STATE = {
    "deployed": '{"deployment": {"resources": [{"urn": "urn:pulumi:dev::floe::pulumi:pulumi:Stack::floe-dev"}]}}',
    "destroyed": '{"deployment": {"resources": []}}',
}


def run_module(tmp_path: Path, state: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "commands"
    fake = bin_dir / "pulumi"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {log}\n[ \"$1 $2\" = 'stack export' ] && echo '{state}'\nexit 0\n")
    fake.chmod(0o755)
    tests = tmp_path / "e2e"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "from harness.fixtures import pytest_runtest_makereport, restored_after_a_failure  # noqa: F401\n"
    )
    (tests / "test_steps.py").write_text(
        textwrap.dedent(MODULE).replace("BIN", f"__import__('pathlib').Path({str(bin_dir)!r})")
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(tests)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_a_failed_step_restores_its_stack_and_a_passing_one_runs_nothing(tmp_path: Path) -> None:
    result, commands = run_module(tmp_path, STATE["deployed"])
    assert "1 failed, 2 passed" in result.stdout, result.stdout[-3000:]
    assert "PASSED e2e/test_steps.py::test_3_starts_where_step_2_started" in result.stdout, result.stdout[-3000:]
    assert "stack dev: restored; its `up` exited 0" in result.stdout
    # Only after step 2: is it deployed, the lock of a killed `up`, the `up` back.
    flags = "--non-interactive --stack dev"
    assert commands == [f"stack export {flags}", f"cancel --yes {flags}", f"up --yes --skip-preview {flags}"]


def test_a_stack_the_failed_step_destroyed_stays_destroyed(tmp_path: Path) -> None:
    result, commands = run_module(tmp_path, STATE["destroyed"])
    assert "stack dev: destroyed by the step: left so" in result.stdout, result.stdout[-3000:]
    # Asked after step 2, and after step 3 (which then fails too): never an `up`.
    assert commands == ["stack export --non-interactive --stack dev"] * 2


@pytest.mark.parametrize("name", ["pytest_runtest_makereport", "restored_after_a_failure"])
def test_the_e2e_suite_hands_pytest_the_restore(name: str) -> None:
    """tests/e2e/conftest.py hands pytest the hook and the fixture (pytest finds them there only)."""
    spec = importlib.util.spec_from_file_location("e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert name in vars(module)


# --- two groups at once, and the module that has the server alone ----------------------------

STEPS = """
import os, time

def _log(event):
    with open(os.environ["STEPS_LOG"], "a") as f:
        f.write(f"{time.monotonic():.3f} {os.getpid()} {__name__} {event}\\n")

def test_1():
    _log("1 in")
    time.sleep(0.5)
    _log("1 out")

def test_2():
    _log("2 in")
    assert __name__ != os.environ.get("FAILING"), "step 2 failed"
    time.sleep(0.5)
    _log("2 out")
"""


def run_groups(tmp_path: Path, failing: str = "") -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """tools/e2e.py on modules named as the suite's are, each two steps that log when they run."""
    tests = tmp_path / "e2e"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "from harness.fixtures import pytest_collection_modifyitems, turn_at_the_server  # noqa: F401\n"
    )
    for module in ("test_lifecycle", "test_sync", "test_kubernetes_auth", "test_rate_limits"):
        (tests / f"{module}.py").write_text(STEPS)
    log = tmp_path / "steps"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "e2e.py"), "--tests", str(tests), "-p", "no:cacheprovider", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "STEPS_LOG": str(log),
            "FAILING": failing,
            "INFISICAL_STATE": str(tmp_path / "state"),  # the turns' lock files
            "FLOE_E2E_INFISICAL_ENV": str(tmp_path / "no-server.env"),  # no server is started
            "FLOE_E2E_ARTIFACTS": str(tmp_path / "artifacts"),
        },
    )
    return result, [line.split() for line in log.read_text().splitlines()]


def test_make_e2e_runs_the_two_groups_at_once_and_the_rate_limit_module_alone(tmp_path: Path) -> None:
    """Group a (the lifecycle's) and group b (Kubernetes Auth's) run at the same time, in two
    processes, each module's steps in order; the rate-limit module (group b, last) starts only
    when no module of group a holds its turn at the server."""
    result, events = run_groups(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "[a] 4 passed" in result.stdout and "[b] 4 passed" in result.stdout, result.stdout
    pid = {name: {p for _, p, n, _, _ in events if n == name} for _, _, name, _, _ in events}
    assert pid["test_lifecycle"] == pid["test_sync"] != pid["test_kubernetes_auth"] == pid["test_rate_limits"]
    at = {(n, f"{step} {what}"): float(t) for t, _, n, step, what in events}
    for name in pid:  # in order, one step after the other
        assert at[name, "1 out"] <= at[name, "2 in"]
    assert at["test_kubernetes_auth", "1 in"] < at["test_lifecycle", "2 out"], "the groups did not run at once"
    alone = (at["test_rate_limits", "1 in"], at["test_rate_limits", "2 out"])
    for name in ("test_lifecycle", "test_sync"):  # no module of group a ran meanwhile
        assert at[name, "2 out"] <= alone[0] or alone[1] <= at[name, "1 in"], f"{name} ran beside the rate limits"
    assert (tmp_path / "artifacts" / "group-a.log").read_text().count("passed") == 1


def test_make_e2e_fails_when_one_group_fails_and_the_other_still_runs_to_its_end(tmp_path: Path) -> None:
    result, events = run_groups(tmp_path, failing="test_kubernetes_auth")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "[b] FAILED" in result.stdout and "step 2 failed" in result.stdout, result.stdout[-3000:]
    assert "[a] 4 passed" in result.stdout
    assert "e2e group b: pytest exited 1" in result.stdout
    assert [n for _, _, n, step, what in events if (step, what) == ("2", "out")].count("test_rate_limits") == 1


def test_the_modules_that_count_the_organisations_identities_share_a_group() -> None:
    """Every e2e module runs in a group (a module without one would have its steps scattered over
    the workers), and those that act as the organisation's admin, and count its identities, run in
    the same group: the other group's identities would otherwise show in their counts."""
    modules = sorted(p.name for p in (ROOT / "tests" / "e2e").glob("test_*.py"))
    assert sorted(m for m, _ in ORDER) == modules
    group = dict(ORDER)
    admin = {m for m in modules if "InfisicalAdmin" in (ROOT / "tests" / "e2e" / m).read_text()}
    assert {"test_managed_identities.py", "test_prod_stack.py", "test_demo.py"} <= admin
    assert len({group[m] for m in admin | ALONE}) == 1, {m: group[m] for m in admin | ALONE}


def test_a_module_alone_waits_for_the_shared_turns_and_goes_before_those_asked_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFISICAL_STATE", str(tmp_path))
    events: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def shared(name: str, hold: threading.Event | None = None) -> None:
        with server_turn(alone=False):
            events.append(f"{name} in")
            if hold is not None:
                first_in.set()
                hold.wait(5)
            events.append(f"{name} out")

    def alone() -> None:
        with server_turn(alone=True):
            events.append("alone in")
            time.sleep(0.2)
            events.append("alone out")

    first = threading.Thread(target=shared, args=("first", release_first))
    first.start()
    assert first_in.wait(5)
    with server_turn(alone=False):  # shared turns go together
        events.append("second in and out")
    waiting = threading.Thread(target=alone)
    waiting.start()
    time.sleep(0.2)
    later = threading.Thread(target=shared, args=("later",))
    later.start()
    time.sleep(0.2)
    assert events == ["first in", "second in and out"], "a turn went in while the first shared one was held"
    release_first.set()
    for thread in (first, waiting, later):
        thread.join(5)
    assert events == ["first in", "second in and out", "first out", "alone in", "alone out", "later in", "later out"]
