"""`floe secrets plan`: offline, never decrypts, exit codes, stderr, rendered YAML."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support import ROOT

from floe_infra.cli import main

CANARY = "v1:CANARY-CIPHERTEXT-never-printed"


def add_secret_config(project: Path, stack: str, extra: dict[str, object]) -> None:
    path = project / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"].update(extra)
    path.write_text(yaml.safe_dump(doc))


def test_plan_table_lists_every_resource_and_counts(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", raising=False)
    assert main(["secrets", "plan", "--stack", "dev"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0] == "Stack dev: Infisical environment dev, secrets type infisical"
    assert any(
        line.split()[:3] == ["kubernetes:helm.sh/v3:Release", "infisical-secrets-operator", "infisical"]
        and "chart secrets-operator v0.11.5" in line
        for line in lines
    )
    crs = [line.split()[:3] for line in lines if line.startswith("kubernetes:secrets.infisical.com")]
    assert crs == [  # the default operator API, v1beta1: one connection and one auth, a static secret per reference
        ["kubernetes:secrets.infisical.com/v1beta1:InfisicalConnection", "infisical", "infisical"],
        ["kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth", "infisical-universal", "infisical"],
        ["kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret", "catalog-credentials", "floe-jobs"],
        ["kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret", "snowflake-credentials", "floe-jobs"],
    ]
    assert any(
        line.split()[:2] == ["kubernetes:helm.sh/v3:Chart", "infisical-secrets-operator"]
        and "the CRDs of chart secrets-operator v0.11.5, one resource each, kept on delete" in line
        for line in lines
    )
    assert lines[-1] == (
        "12 resources, in 2 components (16 to create in `pulumi preview`, counting the stack and the cluster "
        "provider, and the chart's CRDs)"
    )
    values = [line.split(None, 2) for line in lines if line.startswith("pulumi-python:dynamic/infisical:SecretValue")]
    assert [(v[1], v[2]) for v in values] == [
        (
            "/compute/snowflake:SNOWFLAKE_PASSWORD",
            "floe-platform/dev/compute/snowflake SNOWFLAKE_PASSWORD = <generated: 32 characters>",
        ),
        (
            "/compute/snowflake:SNOWFLAKE_USER",
            "floe-platform/dev/compute/snowflake SNOWFLAKE_USER = "
            "<secret from floe:secretValues.snowflake-credentials.SNOWFLAKE_USER>",
        ),
    ]
    passwords = [line.split(None, 2) for line in lines if line.startswith("random:")]
    assert passwords == [
        [
            "random:index/randomPassword:RandomPassword",
            "/compute/snowflake:SNOWFLAKE_PASSWORD",
            "<generated: 32 characters>",
        ]
    ]
    assert "warning: `pulumi up` would stop: the operator's machine identity is not set" in out.err
    assert "warning: `pulumi up` would stop: the writer identity" in out.err


def test_plan_json_and_out_dir(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add_secret_config(
        project,
        "prod",
        {
            "floe:operatorClientId": {"secure": CANARY},
            "floe:operatorClientSecret": {"secure": CANARY},
            "floe:secretValues": {"snowflake-credentials": {"SNOWFLAKE_USER": {"secure": CANARY}}},
            "infisical:clientId": "writer-client-id",
            "infisical:clientSecret": {"secure": CANARY},
        },
    )
    out_dir = project / "rendered"
    assert main(["secrets", "plan", "--stack", "prod", "--format", "json", "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["environment"] == "prod" and doc["warnings"] == []
    assert len(doc["resources"]) == 12
    assert doc["outputs"]["secrets"]["catalog-credentials"]["podSpec"] == {
        "envFrom": [{"secretRef": {"name": "catalog-credentials"}}]
    }
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == [
        "001-namespace-infisical.yaml",
        "002-secret-infisical-infisical-machine-identity.yaml.placeholder",  # `kubectl apply -f` skips it
        "003-infisicalconnection-infisical-infisical.yaml",
        "004-infisicalauth-infisical-infisical-universal.yaml",
        "005-namespace-floe-jobs.yaml",
        "006-infisicalstaticsecret-floe-jobs-catalog-credentials.yaml",
        "007-infisicalstaticsecret-floe-jobs-snowflake-credentials.yaml",
    ]
    identity = yaml.safe_load((out_dir / files[1]).read_text())
    assert identity["stringData"] == {
        "clientId": "<secret from floe:operatorClientId>",
        "clientSecret": "<secret from floe:operatorClientSecret>",
    }
    everything = captured.out + captured.err + "".join(p.read_text() for p in out_dir.iterdir())
    assert CANARY not in everything


def test_plan_out_writes_exactly_the_plan_and_never_touches_other_files(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = project / "rendered"
    assert main(["secrets", "plan", "--stack", "dev", "--out", str(out_dir)]) == 0
    manifest = project / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("secret_ref: catalog-credentials", "secret_ref: catalog-creds"))
    # a reference renamed: its old file must not linger for `kubectl apply -f` to bring it back
    assert main(["secrets", "plan", "--stack", "dev", "--out", str(out_dir)]) == 0
    files = sorted(p.name for p in out_dir.iterdir())
    assert not [f for f in files if "catalog-credentials" in f] and any("catalog-creds" in f for f in files)
    (out_dir / "hand-written.yaml").write_text("kind: ConfigMap\n")
    capsys.readouterr()
    assert main(["secrets", "plan", "--stack", "dev", "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"floe: error: {out_dir}: holds hand-written.yaml, which floe did not write: use a directory of floe's own "
        "(or an empty one), or move them\n"
    )
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*files, "hand-written.yaml"])  # nothing changed


def test_project_defaults_and_prod_protection(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pulumi_yaml = project / "Pulumi.yaml"
    pulumi_yaml.write_text(pulumi_yaml.read_text().replace("default: floe-jobs", "default: etl"))
    assert main(["secrets", "plan", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "Stack prod: Infisical environment prod, secrets type infisical, every resource protected but the "
        "operator's login material and generated passwords"
    )
    catalog = [line.split()[1:3] for line in out.splitlines() if "catalog-credentials" in line]
    assert catalog == [["catalog-credentials", "etl"]]


def test_manifest_option_overrides_stack_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = project / "other.yaml"
    other.write_text("plugins: {secrets: {type: k8s}}\nsecrets: {only-one: {}}\n")
    assert main(["secrets", "plan", "--stack", "staging", "--manifest", str(other)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "Stack staging: secrets type k8s"  # no Infisical environment for type k8s
    assert "only-one" in out and "snowflake" not in out


def test_version_and_python_dash_m(project: Path) -> None:
    from importlib.metadata import version

    for command in (["-m", "floe_infra", "--version"],):
        proc = subprocess.run([sys.executable, *command], cwd=project, capture_output=True, text=True, check=False)
        assert (proc.returncode, proc.stdout) == (0, f"floe {version('floe-infra')}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "floe_infra", "secrets", "plan", "--stack", "dev"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("Stack dev: Infisical environment dev")


def test_every_option_has_help() -> None:
    from floe_infra.cli import _parser

    def walk(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from ((f"{name} {where}", a) for where, a in walk(sub))
            else:
                yield ",".join(action.option_strings) or action.dest, action

    missing = [where for where, action in walk(_parser()) if not action.help]
    assert missing == []


def test_the_program_run_without_the_engine_says_how_to_run_it(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "__main__.py")], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stderr) == (
        1,
        "this is a Pulumi program: run it with `pulumi preview` or `pulumi up` (offline: `floe secrets plan`)\n",
    )


def test_secret_values_set_with_path_are_seen_without_decrypting(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "manifest.yaml").write_text(
        "plugins: {secrets: {type: k8s}}\nsecrets:\n  db:\n    keys: {USER: {config: true}, PASS: {config: true}}\n"
    )
    add_secret_config(project, "dev", {"floe:secretValues": {"db": {"USER": {"secure": CANARY}}}})
    assert main(["secrets", "plan", "--stack", "dev"]) == 0
    out = capsys.readouterr()
    assert "no value for key PASS of reference db: run `pulumi config set --secret --path --stack dev " in out.err
    assert "key USER" not in out.err
    assert CANARY not in out.out + out.err


@pytest.mark.parametrize(
    ("args", "setup", "match"),
    [
        (
            ["--stack", "qa"],
            None,
            r"Pulumi\.qa\.yaml: not found: create the stack with `pulumi stack init qa`.*"
            r"or pick another --stack \(stacks here: dev, prod, staging\)$",
        ),
        (["--stack", "dev"], "manifest", r"manifest\.yaml: 1 problem:\n  - line 1: plugins: .*"),
        (["--stack", "dev"], "environment", r"Pulumi\.dev\.yaml: floe:environment is not set"),
        (["--stack", "dev", "--manifest", "nope.yaml"], None, r"nope\.yaml: 1 problem:\n  - file not found"),
        (["--stack", "dev"], "typo", r"Pulumi\.dev\.yaml: unknown key floe:enviroment: remove it or fix its spelling"),
        (
            ["--stack", "dev"],
            "environment-slug",
            r"Pulumi\.dev\.yaml: floe:environment: 'Dev Env' is not an Infisical "
            r"environment slug: use lowercase letters and digits",
        ),
        (
            ["--stack", "dev"],
            "plaintext-operator-secret",
            r"^floe: error: Pulumi\.dev\.yaml: floe:operatorClientSecret is in plaintext in a committed file: "
            r"delete it "
            r"there and run `pulumi config set --secret --stack dev 'floe:operatorClientSecret' <value>`\n$",
        ),
        (
            ["--stack", "dev"],
            "plaintext-secret-value",
            r"floe:secretValues\.snowflake-credentials\.SNOWFLAKE_USER is in plaintext in a committed file: delete it "
            r"there and run `pulumi config set --secret --path --stack dev "
            r"'floe:secretValues\.snowflake-credentials\.SNOWFLAKE_USER' <value>`",
        ),
        (
            ["--stack", "dev"],
            "plaintext-writer-secret",
            r"Pulumi\.dev\.yaml: infisical:clientSecret is in plaintext in a committed file: .*"
            r"`pulumi config set --secret --stack dev 'infisical:clientSecret' <value>`",
        ),
    ],
    ids=[
        "unknown-stack",
        "bad-manifest",
        "no-environment",
        "missing-manifest",
        "config-typo",
        "environment-slug",
        "plaintext-operator-secret",
        "plaintext-secret-value",
        "plaintext-writer-secret",
    ],
)
def test_bad_input_exits_2_with_one_message(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], setup: str | None, match: str
) -> None:
    if setup == "manifest":
        (project / "manifest.yaml").write_text("plugins: 3\n")
    elif setup == "environment":
        (project / "Pulumi.dev.yaml").write_text("config: {}\n")
    elif setup == "typo":
        add_secret_config(project, "dev", {"floe:enviroment": "dev"})
    elif setup == "environment-slug":
        add_secret_config(project, "dev", {"floe:environment": "Dev Env"})
    elif setup == "plaintext-operator-secret":
        add_secret_config(project, "dev", {"floe:operatorClientSecret": CANARY, "floe:operatorClientId": "plain-id"})
    elif setup == "plaintext-secret-value":
        add_secret_config(
            project,
            "dev",
            {
                "floe:secretValues": {
                    "snowflake-credentials": {"SNOWFLAKE_USER": CANARY, "SNOWFLAKE_ACCOUNT": {"secure": "v1:abc"}}
                }
            },
        )
    elif setup == "plaintext-writer-secret":
        add_secret_config(project, "dev", {"infisical:clientSecret": CANARY})
    assert main(["secrets", "plan", *args]) == 2
    out = capsys.readouterr()
    assert CANARY not in out.err
    assert out.out == ""
    assert out.err.startswith("floe: error: ")
    assert "Traceback" not in out.err
    import re

    assert re.search(match, out.err)


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["secrets", "plan"])
    assert info.value.code == 2
    assert "--stack" in capsys.readouterr().err


def test_console_script_runs_without_importing_pulumi(project: Path) -> None:
    code = (
        "import sys; from floe_infra.cli import main; rc = main(['secrets', 'plan', '--stack', 'dev']); "
        "assert 'pulumi' not in sys.modules and 'pulumi_kubernetes' not in sys.modules, 'pulumi imported'; "
        "sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "infisical-secrets-operator" in proc.stdout


def test_the_program_entry_point_imports_what_exists() -> None:
    """``__main__.py`` runs only under the engine: a stale import there fails no other unit test."""
    import ast
    import importlib

    tree = ast.parse((ROOT / "__main__.py").read_text())
    (imported,) = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and "floe" in n.module]
    assert imported.module is not None
    module = importlib.import_module(imported.module)
    assert all(callable(getattr(module, alias.name)) for alias in imported.names)
