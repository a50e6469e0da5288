"""The GitHub workflows: actionlint finds nothing, and they run what the README promises, in order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint is not installed: `make install` installs it (requirements.txt)")
    return found


def load(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def test_actionlint_passes_every_workflow() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 3
    result = subprocess.run([actionlint(), *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with: {fetch-deph: 1}\n"
    )
    result = subprocess.run([actionlint(), str(broken)], capture_output=True, text=True)
    assert result.returncode == 1 and "fetch-deph" in result.stdout


def steps(job: dict[str, Any]) -> list[str]:
    return [s.get("run") or s.get("uses", "") for s in job["steps"]]


def test_preview_tests_plans_every_stack_then_previews_with_the_policy_pack() -> None:
    wf = load("preview.yml")
    assert list(wf[True]) == ["pull_request"]  # YAML reads the key `on` as True
    jobs = wf["jobs"]
    assert "make test" in steps(jobs["test"])
    assert jobs["plan"]["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert any("actions/upload-artifact" in s for s in steps(jobs["plan"]))
    preview = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert preview["with"]["command"] == "preview" and preview["with"]["comment-on-pr"] is True
    assert preview["with"]["policyPacks"] == "policy"
    assert preview["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    text = (WORKFLOWS / "preview.yml").read_text() + (WORKFLOWS / "deploy-stack.yml").read_text()
    assert 'echo "$KUBECONFIG_CONTENT"' not in text and "set -x" not in text  # secrets are never echoed


def test_deploy_goes_dev_staging_prod_each_gated_with_validate_before_and_status_after() -> None:
    jobs = load("deploy.yml")["jobs"]
    assert [(name, job.get("needs"), job["with"]["stack"]) for name, job in jobs.items()] == [
        ("dev", None, "dev"), ("staging", "dev", "staging"), ("prod", "staging", "prod"),
    ]  # fmt: skip
    up = load("deploy-stack.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"
    order = steps(up)
    validate = next(i for i, s in enumerate(order) if "floe secrets validate" in s)
    pulumi = next(i for i, s in enumerate(order) if s.startswith("pulumi/actions"))
    status = next(i for i, s in enumerate(order) if "floe secrets status" in s)
    assert validate < pulumi < status
    assert up["steps"][pulumi]["with"]["command"] == "up"
