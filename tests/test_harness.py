"""The e2e harness's own promise: a step that fails puts the stacks of its fixtures back as it
found them (manifest, stack config, the module wrapper's data, an `up`), so the steps after it
start where they would have; a passing step costs nothing; a stack the step destroyed stays
destroyed. Run on generated modules with a stand-in `pulumi` that records its commands."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

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
