"""The e2e harness's own promise: a step that fails puts its stack back as it found it (manifest,
stack config, an `up`), so the steps after it start where they would have; a passing step costs
nothing. Run on a generated module with a stand-in `pulumi` that records its commands."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MODULE = """
import pytest
from harness import Pulumi

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    (project / "manifest.yaml").write_text("baseline\\n")
    (project / "Pulumi.dev.yaml").write_text("config: {a: 1}\\n")
    return Pulumi(BIN, project, {"PATH": "/usr/bin:/bin"})

def test_1_passes_and_changes_the_manifest(stack):
    (stack.project / "manifest.yaml").write_text("from step 1\\n")

def test_2_fails_half_way(stack):
    (stack.project / "manifest.yaml").write_text("half-applied\\n")
    (stack.project / "Pulumi.dev.yaml").write_text("config: {a: 2}\\n")
    assert False, "step 2 failed"

def test_3_starts_where_step_2_started(stack):
    assert (stack.project / "manifest.yaml").read_text() == "from step 1\\n"
    assert (stack.project / "Pulumi.dev.yaml").read_text() == "config: {a: 1}\\n"
"""


def test_a_failed_step_restores_its_stack_and_a_passing_one_runs_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "commands"
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
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
    assert "1 failed, 2 passed" in result.stdout, result.stdout[-3000:]
    assert "PASSED e2e/test_steps.py::test_3_starts_where_step_2_started" in result.stdout, result.stdout[-3000:]
    assert "stack dev restored; its `up` exited 0" in result.stdout
    # One `up`, by the restore after step 2; none after the passing steps.
    assert log.read_text().splitlines() == ["up --yes --skip-preview --non-interactive --stack dev"]


def test_the_e2e_suite_has_the_restore() -> None:
    """tests/e2e/conftest.py hands pytest the hook and the fixture (pytest finds them there only)."""
    spec = importlib.util.spec_from_file_location("e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {"pytest_runtest_makereport", "restored_after_a_failure"} <= set(vars(module))
