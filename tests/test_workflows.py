"""The GitHub workflows: actionlint finds nothing, and they run what the README promises, in order."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, RunProgram

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
    secrets = next(i for i, s in enumerate(order) if "stack_secrets.py" in s)
    pulumi = next(i for i, s in enumerate(up["steps"]) if s.get("with", {}).get("command") == "up")
    status = next(i for i, s in enumerate(order) if "floe secrets status" in s)
    assert validate < secrets < pulumi < status


def test_third_party_actions_are_pinned_by_commit() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job in load(path.name)["jobs"].values():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses}"


# --- the program with exactly what each job gives it ----------------------------------------


def _job_env(workflow: str, job: str, step_with: str) -> dict[str, str]:
    """The environment one step of a job runs with: the job's env and the step's own."""
    spec = load(workflow)["jobs"][job]
    step = next(s for s in spec["steps"] if step_with in (s.get("run") or s.get("uses", "") or "") + str(s.get("with")))
    return {**spec.get("env", {}), **step.get("env", {})}


def _committed_config(stack: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])


def _secret(expression: str) -> str:
    """A stand-in value for a `${{ secrets.X }}` expression (the job's secret, never a real one)."""
    return "stand-in-" + expression.strip("${} ").removeprefix("secrets.").lower()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_a_pull_request_preview_runs_with_no_secret_at_all(
    run_program: RunProgram, monkeypatch: pytest.MonkeyPatch, stack: str
) -> None:
    """preview.yml gives the program the committed stack config and its env: no secret config."""
    env = _job_env("preview.yml", "preview", "command': 'preview'")
    assert not [k for k in env if "INFISICAL" in k or "FLOE_OPERATOR" in k]
    for name, value in env.items():
        monkeypatch.setenv(name, value if "${{" not in value else _secret(value))
    run = run_program(stack=stack, config=_committed_config(stack), preview=True)
    assert run.error is None
    assert run.of_type("kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_a_deploy_runs_with_the_config_its_job_maps_in(
    run_program: RunProgram, monkeypatch: pytest.MonkeyPatch, stack: str
) -> None:
    """deploy-stack.yml: committed config, plus what stack_secrets.py sets from the step's env,
    plus the writer identity from the job's env; `pulumi up` (not a preview) must not stop."""
    env = {k: _secret(v) for k, v in _job_env("deploy-stack.yml", "up", "stack_secrets.py").items()}
    env["FLOE_SECRET_VALUES"] = json.dumps({"snowflake-credentials": {"SNOWFLAKE_USER": "stand-in"}})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("stack_secrets", ROOT / ".github" / "scripts" / "stack_secrets.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config: dict[str, Any] = _committed_config(stack)
    for key, path, value in script.settings(env):
        if path:
            ns, ref, k = key.split(".", 2)
            config.setdefault(ns, {}).setdefault(ref, {})[k] = value
        else:
            config[key] = value
    run = run_program(stack=stack, config=config)
    assert run.error is None
    assert run.of_type("pulumi-python:dynamic/infisical:SecretValue")
