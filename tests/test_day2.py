"""`floe secrets validate | list | status` through the real clients against the Infisical and Kubernetes doubles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from infisical_double import DoubleServer, InfisicalDouble, Secret
from kube_double import KubeDouble, KubeServer
from support import WRITER, with_operator_api

from floe_infra.cli import main
from floe_infra.clients.infisical import forget_connections
from floe_infra.day2.plugin import KeyReport, PluginContext, SecretsPlugin, load_plugin
from floe_infra.model.registry import plugin_types
from floe_infra.plan.desired import MANAGED_BY, STACK_LABEL

CANARY = "value-canary-9d1c"
NOW = datetime.now(UTC)
LABELS = {**MANAGED_BY, STACK_LABEL: "dev"}
READY = "secrets.infisical.com/ReadyToSyncSecrets"
STATIC_STATUS = "secrets.infisical.com/LastReconcileStatus"
SYNCED_3 = "Infisical controller has started syncing your secrets. Last reconcile synced 3 secrets"


def _time(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def infisical_secret(
    name: str, path: str, conditions: list[dict[str, str]], status_written: timedelta | None = None
) -> dict[str, Any]:
    managed = (
        [{"manager": "manager", "operation": "Update", "subresource": "status", "time": _time(status_written)}]
        if status_written
        else []
    )
    scope = {"projectSlug": "floe-platform", "envSlug": "dev", "secretsPath": path}
    return {
        "apiVersion": "secrets.infisical.com/v1alpha1", "kind": "InfisicalSecret",
        "metadata": {"name": name, "namespace": "floe-jobs", "labels": LABELS, "managedFields": managed},
        "spec": {"authentication": {"universalAuth": {"secretsScope": scope}}},
        "status": {"conditions": conditions},
    }  # fmt: skip


def condition(kind: str, status: str, reason: str, message: str, ago: timedelta) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": _time(ago)}


@dataclass
class World:
    infisical: InfisicalDouble
    kube: KubeDouble
    project: Path


def use_operator_api(project: Path, api: str) -> None:
    manifest = project / "manifest.yaml"
    manifest.write_text(with_operator_api(manifest.read_text(), api))


@pytest.fixture
def world(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Infisical folders for the example manifest, and a cluster whose operator syncs them with
    v1alpha1 InfisicalSecrets: the manifest names that API (v1beta1 is the default)."""
    use_operator_api(project, "v1alpha1")
    infisical = InfisicalDouble()
    infisical.add_identity(*WRITER)
    proj = infisical.add_project("floe-platform")
    for folder in ("/compute", "/compute/snowflake", "/catalog", "/catalog/polaris"):
        infisical.folders.add((proj.id, "dev", folder))
    for key in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD"):
        infisical.secrets[(proj.id, "dev", "/compute/snowflake", key)] = Secret(key, CANARY)
    infisical.secrets[(proj.id, "dev", "/catalog/polaris", "POLARIS_CLIENT_ID")] = Secret("id", CANARY)
    kube = KubeDouble()
    kube.add("infisicalsecrets", infisical_secret(
        "snowflake-credentials", "/compute/snowflake",
        [condition(READY, "True", "OK", SYNCED_3, timedelta(hours=5))],
        status_written=timedelta(minutes=2),
    ))  # fmt: skip
    kube.add("infisicalsecrets", infisical_secret(
        "catalog-credentials", "/catalog/polaris",
        [condition(READY, "False", "Error", "Failed to sync secrets. Error: 403 forbidden", timedelta(minutes=7))],
    ))  # fmt: skip
    # What the operator wrote for the synced one (status checks its keys against the manifest's).
    kube.add(
        "secrets",
        k8s_secret(
            "snowflake-credentials",
            dict.fromkeys(("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD"), CANARY),
        ),
    )
    forget_connections()
    with DoubleServer(infisical), KubeServer(kube):
        monkeypatch.setenv("INFISICAL_HOST", infisical.url)
        monkeypatch.setenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", WRITER[0])
        monkeypatch.setenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET", WRITER[1])
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(project)))
        monkeypatch.delenv("NO_COLOR", raising=False)
        yield World(infisical, kube, project)
    forget_connections()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["secrets", *args, "--stack", "dev"])
    out = capsys.readouterr()
    assert CANARY not in out.out + out.err
    return code, out.out, out.err


def declare(project: Path, extra: str) -> None:
    (project / "manifest.yaml").write_text((project / "manifest.yaml").read_text() + extra)


# --- validate -----------------------------------------------------------------------------


def test_validate_all_present(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Validating secret references in manifest.yaml...",
        "OK catalog-credentials: exists, 1 key",
        "OK snowflake-credentials: exists, 3 keys",
    ]
    counts = world.infisical.count()
    assert counts["POST /api/v1/auth/universal-auth/login"] == 1
    assert counts["GET /api/v3/secrets/raw"] == 2  # one list per folder, none per key
    assert len(world.infisical.requests) == 3


def test_validate_names_missing_keys_and_empty_folders(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = "  catalog-credentials:\n    keys:\n      POLARIS_CLIENT_ID: {}\n      POLARIS_CLIENT_SECRET: {}\n"
    declare(world.project, catalog + "  warehouse-credentials:\n    keys:\n      TOKEN: {}\n")
    code, out, _ = run(capsys, "validate")
    assert code == 1
    assert (
        "FAIL catalog-credentials: missing keys POLARIS_CLIENT_SECRET at /catalog/polaris in floe-platform/dev" in out
    )
    assert "FAIL warehouse-credentials: no secrets at /warehouse-credentials in floe-platform/dev" in out
    assert "OK snowflake-credentials: exists, 3 keys" in out


def test_validate_of_a_project_that_is_gone_fails_at_once_naming_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Infisical answers a list by slug of a missing project 500; the v1 lookup says it is gone, so
    the CLI says so at once instead of retrying a minute."""
    world.infisical.remove_project("floe-platform")
    code, out, err = run(capsys, "validate")
    assert (code, out.splitlines()[1:]) == (2, [])  # the heading, then the one-line error
    assert re.search(r"has no project floe-platform \(404 NotFound: Project with slug 'floe-platform' not found\); "
                     r"check the project slug", err), err  # fmt: skip
    counts = world.infisical.count()
    assert (counts["GET /api/v3/secrets/raw"], counts["GET /api/v1/projects/slug/floe-platform"]) == (1, 1)


def test_validate_before_the_first_up_needs_only_keys_set_by_hand(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_USER"):  # generate: and config: true keys
        del world.infisical.secrets[(world.infisical.projects["floe-platform"].id, "dev", "/compute/snowflake", key)]
    code, out, _ = run(capsys, "validate")
    assert code == 1 and "FAIL snowflake-credentials: missing keys SNOWFLAKE_PASSWORD, SNOWFLAKE_USER" in out
    code, out, _ = run(capsys, "validate", "--pre-deploy")
    assert code == 0 and "OK snowflake-credentials: exists, 1 key" in out


@pytest.mark.parametrize("pre_deploy", [False, True], ids=["validate", "pre-deploy"])
def test_a_reference_nothing_will_fill_fails_even_before_the_first_up(
    world: World, capsys: pytest.CaptureFixture[str], pre_deploy: bool
) -> None:
    """No keys declared and nothing in its folder: its Secret would be empty forever."""
    declare(world.project, "  warehouse-credentials: {}\n")
    code, out, _ = run(capsys, "validate", *(["--pre-deploy"] if pre_deploy else []))
    assert code == 1
    assert (
        "FAIL warehouse-credentials: no secrets at /warehouse-credentials in floe-platform/dev, and the manifest "
        "declares no keys for it, so nothing will fill its Secret: set them there, or declare keys (generate: or "
        "config: true)"
    ) in out


class _Clock:
    """time.monotonic and time.sleep for the retry loop: sleeping advances the clock, instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:1", "http://floe-no-such-host.invalid"], ids=["refused", "no-dns-answer"]
)
def test_an_unreachable_infisical_fails_validate_within_seconds_with_cli_advice(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    from floe_infra.clients import infisical as _infisical

    clock = _Clock()
    monkeypatch.setattr(_infisical, "time", clock)
    monkeypatch.setenv("INFISICAL_HOST", host)
    code, out, err = run(capsys, "validate")
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert clock.now <= 10.0, f"gave up after {clock.now:.0f}s"
    assert lines[0] == (
        f"floe: Infisical at {host}: ConnectionError from POST {host}/api/v1/auth/universal-auth/"
        "login; retrying in 1s (attempt 2)"
    )
    assert re.fullmatch(
        rf"floe: error: could not log in: Infisical at {re.escape(host)} could not be reached for 8s \(\d attempts, "
        rf"last: ConnectionError from POST {re.escape(host)}/api/v1/auth/universal-auth/login\); run the command "
        r"again once it answers",
        lines[-1],
    ), lines[-1]
    assert "pulumi" not in err


def test_a_host_that_is_not_a_url_is_one_line(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFISICAL_HOST", "not-a-url")
    code, _, err = run(capsys, "validate")
    assert (code, err) == (
        2,
        "floe: error: the Infisical host (INFISICAL_HOST) 'not-a-url' is not an http(s) URL: "
        "write it like https://infisical.company.com\n",
    )


def test_ctrl_c_exits_130_without_a_traceback(project: Path) -> None:
    code = (
        "import sys; from floe_infra import cli\n"
        "def interrupted(argv=None): raise KeyboardInterrupt\n"
        "cli.main = interrupted; cli.entry()"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (130, "floe: interrupted\n")


def test_validate_json(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    assert doc["rows"][1] == {"status": "ok", "reference": "snowflake-credentials", "detail": "exists, 3 keys"}


def test_validate_symbols_only_on_a_terminal(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from floe_infra.day2 import commands as day2

    class Tty(list[str]):
        def write(self, text: str) -> None:
            self.append(text)

        def isatty(self) -> bool:
            return True

    stack = day2.open_target(world.project, "dev", None, None)
    report = day2.validate(stack)
    tty = Tty()
    day2.render(report, "table", tty)  # type: ignore[arg-type]
    assert "✓ snowflake-credentials: exists, 3 keys" in "".join(tty)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Tty()
    day2.render(report, "table", plain)  # type: ignore[arg-type]
    assert "OK snowflake-credentials" in "".join(plain) and "\033" not in "".join(plain)


@pytest.mark.parametrize("variable", ["INFISICAL_UNIVERSAL_AUTH_CLIENT_ID", "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"])
def test_validate_without_credentials_names_the_variable(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv(variable)
    code, out, err = run(capsys, "validate")
    assert code == 2 and out == ""
    key = {
        "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID": "`pulumi config set infisical:clientId <client-id>`",
        "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET": "`pulumi config set --secret infisical:clientSecret <secret>`",
    }
    assert err == f"floe: error: no Infisical machine identity to use: set {key[variable]} (or {variable})\n"


STAND_IN = """#!/bin/sh
# pulumi, as far as `pulumi config get --stack dev infisical:clientSecret` goes
echo "$@" >> "$(dirname "$0")/calls"
if [ "$1 $2 $3 $4 $5" = "config get --stack dev infisical:clientSecret" ]; then echo "{secret}"; exit 0; fi
echo "error: no passphrase" >&2; exit 255
"""


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain-id", "encrypted-secret"])
def test_validate_takes_the_writer_from_the_stack_decrypting_with_the_pulumi_cli(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    encrypted: bool,
) -> None:
    """infisical:clientId (plain) and infisical:clientSecret (encrypted: read with `pulumi config
    get`, which holds the key) from Pulumi.dev.yaml, as `pulumi up` reads them; the environment's
    value is used without decrypting when it is set."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(STAND_IN.format(secret=WRITER[1]))
    (bin_dir / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID")
    if encrypted:
        monkeypatch.delenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET")
    stack_file = world.project / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text() + f"  infisical:clientId: {WRITER[0]}\n"
        "  infisical:clientSecret:\n    secure: v1:ciphertext-stand-in\n"
    )
    code, out, err = run(capsys, "validate")
    assert code == 0, err
    calls = (bin_dir / "calls").read_text().splitlines() if (bin_dir / "calls").exists() else []
    assert calls == (["config get --stack dev infisical:clientSecret"] if encrypted else [])
    assert WRITER[1] not in out + err


def test_validate_says_how_to_read_an_encrypted_writer_secret_when_pulumi_cannot(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text('#!/bin/sh\necho "error: no passphrase" >&2\nexit 255\n')
    (bin_dir / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET")
    stack_file = world.project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text() + "  infisical:clientSecret:\n    secure: v1:ciphertext-stand-in\n")
    code, out, err = run(capsys, "validate")
    assert code == 2 and out == ""
    assert err == (
        "floe: error: Pulumi.dev.yaml: infisical:clientSecret is encrypted and `pulumi config get --stack dev "
        "infisical:clientSecret` failed (error: no passphrase): make `pulumi config get --stack dev "
        "infisical:clientSecret` work here (the pulumi CLI, logged in, with the stack's passphrase), or export "
        "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET\n"
    )


# --- list and status ----------------------------------------------------------------------


def test_list_shows_sync_status_and_missing(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.kube.add("infisicalsecrets", infisical_secret("fresh", "/fresh", []))
    declare(world.project, "  warehouse-credentials: {}\n")
    code, out, _ = run(capsys, "list", "--namespace", "floe-jobs")
    assert code == 1
    assert out.splitlines() == [
        "NAME                   NAMESPACE  TYPE             SYNC STATUS",
        "catalog-credentials    floe-jobs  InfisicalSecret  Failed: Error: Failed to sync secrets. "
        "Error: 403 forbidden",
        "fresh                  floe-jobs  InfisicalSecret  Pending",
        "snowflake-credentials  floe-jobs  InfisicalSecret  Synced",
        "warehouse-credentials  floe-jobs  -                Missing",
    ]
    assert ("GET", "/apis/secrets.infisical.com/v1alpha1/namespaces/floe-jobs/infisicalsecrets") in world.kube.requests


def test_list_all_namespaces_json_and_exit_zero_when_synced(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.kube.objects.pop(("infisicalsecrets", "floe-jobs", "catalog-credentials"))
    world.kube.add("infisicalsecrets", infisical_secret(
        "catalog-credentials", "/catalog/polaris",
        [condition(READY, "True", "OK", "Last reconcile synced 1 secrets", timedelta(minutes=1))],
    ))  # fmt: skip
    code, out, _ = run(capsys, "list", "--all-namespaces", "--format", "json")
    assert code == 0
    assert [(r["name"], r["sync_status"]) for r in json.loads(out)["rows"]] == [
        ("catalog-credentials", "Synced"),
        ("snowflake-credentials", "Synced"),
    ]
    assert ("GET", "/apis/secrets.infisical.com/v1alpha1/infisicalsecrets") in world.kube.requests


def test_status_last_sync_and_reasons(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PROJECT", "ENV", "LAST", "SYNC", "MESSAGE"]
    assert lines[1].split()[:5] == ["catalog-credentials", "floe-platform", "dev", "7m", "ago"]
    assert "Failed: Error: Failed to sync secrets. Error: 403 forbidden" in lines[1]
    # The status was last written 2 minutes ago, though the condition turned True 5 hours ago.
    assert lines[2].split() == ["snowflake-credentials", "floe-platform", "dev", "2m", "ago"]


def test_status_json_carries_the_time(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--format", "json")
    rows = {r["name"]: r for r in json.loads(out)["rows"]}
    assert code == 1
    snowflake = rows["snowflake-credentials"]
    assert (snowflake["project"], snowflake["env"], snowflake["message"]) == ("floe-platform", "dev", "")
    written = datetime.fromisoformat(snowflake["last_sync_time"])
    assert timedelta(minutes=1) < NOW - written < timedelta(minutes=3)
    assert rows["catalog-credentials"]["message"].startswith("Failed: Error: Failed to sync secrets.")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("closed-port", r"floe: error: cannot reach the Kubernetes API at http://127\.0\.0\.1:1: "),
        ("no-crd", r"floe: error: the cluster at http://127\.0\.0\.1:\d+ has no infisicalsecrets "
                   r"\(secrets\.infisical\.com/v1alpha1\): is the operator installed\?"),
        ("no-crd-v1beta1", r"floe: error: the cluster at http://127\.0\.0\.1:\d+ has no infisicalstaticsecrets "
                           r"\(secrets\.infisical\.com/v1beta1\): is the operator installed\?"),
        ("no-config", r"floe: error: no Kubernetes configuration: set KUBECONFIG, create ~/\.kube/config"),
        ("absent-file", r"floe: error: KUBECONFIG names .*/absent, which does not exist: fix the path or unset "
                        r"KUBECONFIG$"),
        ("not-yaml", r"floe: error: .*/kubeconfig: not a valid kubeconfig \(.*\): fix it, or point KUBECONFIG at "
                     r"another file$"),
        ("a-list", r"floe: error: .*/kubeconfig: not a valid kubeconfig \(.*\): fix it"),
        ("bad-context", r"floe: error: cannot use Kubernetes context 'nope'"),
    ],
    ids=["unreachable", "missing-crd", "missing-crd-v1beta1", "no-kubeconfig", "kubeconfig-absent",
         "kubeconfig-not-yaml", "kubeconfig-a-list", "unknown-context"],
)  # fmt: skip
def test_cluster_problems_are_one_line(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, setup: str, message: str
) -> None:
    args = ["list"]
    if setup == "closed-port":
        config = world.project / "kubeconfig"
        config.write_text(config.read_text().replace(world.kube.url, "http://127.0.0.1:1"))
    elif setup in ("no-crd", "no-crd-v1beta1"):
        if setup == "no-crd-v1beta1":
            use_operator_api(world.project, "v1beta1")
        world.kube.crd_installed = False
    elif setup == "no-config":
        monkeypatch.delenv("KUBECONFIG")
        monkeypatch.setenv("HOME", str(world.project))
    elif setup == "absent-file":
        monkeypatch.setenv("KUBECONFIG", str(world.project / "absent"))
    elif setup in ("not-yaml", "a-list"):
        (world.project / "kubeconfig").write_text("garbage: [\n" if setup == "not-yaml" else "- a\n- b\n")
    else:
        args += ["--context", "nope"]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert re.match(message, err)


def test_list_and_status_read_v1beta1_and_eso_conditions(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    use_operator_api(world.project, "v1beta1")
    manifest = world.project / "manifest.yaml"
    text = manifest.read_text()
    manifest.write_text(text.replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n"))
    world.kube.objects.clear()
    world.kube.add("infisicalstaticsecrets", {
        "apiVersion": "secrets.infisical.com/v1beta1", "kind": "InfisicalStaticSecret",
        "metadata": {"name": "catalog-credentials", "namespace": "floe-jobs", "labels": LABELS},
        "spec": {"sources": [{"projectSlug": "floe-platform", "environmentSlug": "dev",
                              "secretPath": "/catalog/polaris"}]},
        "status": {"conditions": [
            condition(STATIC_STATUS, "True", "OK", "Reconciliation successful", timedelta(days=2)),
            {**condition("secrets.infisical.com/LastSuccessfulReconcileAt", "True", "OK", "", timedelta(days=2)),
             "message": _time(timedelta(minutes=3))},
        ]},
    })  # fmt: skip
    world.kube.add("externalsecrets", {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "snowflake-credentials", "namespace": "floe-jobs", "labels": LABELS},
        "status": {"refreshTime": _time(timedelta(hours=1)), "conditions": [
            condition("Ready", "False", "SecretSyncedError", "could not get secret data from provider",
                      timedelta(hours=1)),
        ]},
    })  # fmt: skip
    code, out, _ = run(capsys, "list")
    assert code == 1
    assert out.splitlines()[1:] == [
        "catalog-credentials    floe-jobs  InfisicalStaticSecret  Synced",
        "snowflake-credentials  floe-jobs  ExternalSecret         "
        "Failed: SecretSyncedError: could not get secret data from provider",
    ]
    code, out, _ = run(capsys, "status")
    rows = [line.split()[:5] for line in out.splitlines()[1:]]
    assert rows == [
        ["catalog-credentials", "floe-platform", "dev", "3m", "ago"],
        ["snowflake-credentials", "floe-platform", "dev", "1h", "ago"],
    ]


def test_status_of_a_static_secret_whose_auth_is_refused_gives_infisicals_reason(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator marks the InfisicalStaticSecret only "InfisicalAuth is not ready"; the reason
    (here a Kubernetes Auth login refused for the ServiceAccount's name) is on the InfisicalAuth."""
    use_operator_api(world.project, "v1beta1")
    world.kube.objects.clear()
    refused = (
        "infisicalAuth is not ready to be used due to an error: unable to authenticate with Kubernetes: "
        "APIError: CallKubernetesAuthLogin unsuccessful response [POST http://127.0.0.1:18080/api/v1/auth/"
        'kubernetes-auth/login] [status-code=401] [message="Access denied: K8s name not allowed."]'
    )
    world.kube.add("infisicalauths", {
        "apiVersion": "secrets.infisical.com/v1beta1", "kind": "InfisicalAuth",
        "metadata": {"name": "infisical-kubernetes", "namespace": "infisical", "labels": LABELS},
        "status": {"conditions": [condition("secrets.infisical.com/IsReady", "False", "Error", refused,
                                            timedelta(minutes=1))]},
    })  # fmt: skip
    for name, path in (("catalog-credentials", "/catalog/polaris"), ("snowflake-credentials", "/compute/snowflake")):
        world.kube.add("infisicalstaticsecrets", {
            "apiVersion": "secrets.infisical.com/v1beta1", "kind": "InfisicalStaticSecret",
            "metadata": {"name": name, "namespace": "floe-jobs", "labels": LABELS},
            "spec": {"infisicalAuthRef": {"name": "infisical-kubernetes", "namespace": "infisical"},
                     "sources": [{"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": path}]},
            "status": {"conditions": [condition(
                STATIC_STATUS, "False", "Error", "Reconciliation failed: InfisicalAuth is not ready",
                timedelta(minutes=1))]},
        })  # fmt: skip
    code, out, _ = run(capsys, "status", "--format", "json")
    assert code == 1
    rows = json.loads(out)["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["message"].startswith(
            "Failed: Error: Reconciliation failed: InfisicalAuth is not ready (InfisicalAuth "
            "infisical/infisical-kubernetes: Error: infisicalAuth is not ready"
        )
        assert "Access denied: K8s name not allowed." in row["message"]


# --- type k8s -----------------------------------------------------------------------------


def k8s_secret(name: str, keys: dict[str, str]) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": "floe-jobs", "labels": LABELS,
                     "creationTimestamp": _time(timedelta(hours=3)),
                     "managedFields": [{"manager": "pulumi-kubernetes", "time": _time(timedelta(minutes=30))}]},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()},
    }  # fmt: skip


def test_k8s_type_validates_and_lists_secrets(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    from support import K8S_MANIFEST

    (world.project / "manifest.yaml").write_text(K8S_MANIFEST)
    world.kube.add("secrets", k8s_secret("snowflake-credentials", {"SNOWFLAKE_USER": CANARY}))
    code, out, _ = run(capsys, "validate")
    assert code == 1
    assert (
        "FAIL snowflake-credentials: missing keys SNOWFLAKE_PASSWORD at Secret floe-jobs/snowflake-credentials" in out
    )
    code, out, _ = run(capsys, "status")
    assert out.splitlines()[1].split() == ["snowflake-credentials", "-", "dev", "30m", "ago"]
    assert world.infisical.requests == []


def test_a_synced_secret_that_lacks_declared_keys_is_failed_naming_them_and_no_value(
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ESO reports success for a folder that does not exist (Infisical lists it as empty), and
    fills an empty Secret: status compares the Secret's key names with the manifest's."""
    manifest = world.project / "manifest.yaml"
    use_operator_api(world.project, "v1beta1")
    via_eso = manifest.read_text().replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n")
    manifest.write_text(via_eso)
    world.kube.objects.clear()
    world.kube.add("externalsecrets", {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "snowflake-credentials", "namespace": "floe-jobs", "labels": LABELS},
        "status": {"refreshTime": _time(timedelta(minutes=1)), "conditions": [
            condition("Ready", "True", "SecretSynced", "secret synced", timedelta(minutes=1))]},
    })  # fmt: skip
    world.kube.add("secrets", k8s_secret("snowflake-credentials", {"SNOWFLAKE_USER": CANARY}))
    code, out, _ = run(capsys, "list")
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith("snowflake-credentials")]
    assert row.split(None, 3)[3] == (
        "Failed: ExternalSecret reports success, but Secret floe-jobs/snowflake-credentials lacks "
        "SNOWFLAKE_ACCOUNT, SNOWFLAKE_PASSWORD, which the manifest declares: does /compute/snowflake hold them "
        "in Infisical? (`floe secrets validate --stack dev`)"
    )
    world.kube.add(
        "secrets",
        k8s_secret(
            "snowflake-credentials",
            {"SNOWFLAKE_USER": CANARY, "SNOWFLAKE_ACCOUNT": CANARY, "SNOWFLAKE_PASSWORD": CANARY},
        ),
    )
    code, out, _ = run(capsys, "list")
    (row,) = [line for line in out.splitlines() if line.startswith("snowflake-credentials")]
    assert row.split()[3] == "Synced"
    del world.kube.objects[("secrets", "floe-jobs", "snowflake-credentials")]  # ESO, Retain, an empty folder
    code, out, _ = run(capsys, "list")
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith("snowflake-credentials")]
    assert (
        "ExternalSecret reports success, but there is no Secret floe-jobs/snowflake-credentials for the keys "
        "the manifest declares (SNOWFLAKE_ACCOUNT, SNOWFLAKE_PASSWORD, SNOWFLAKE_USER)" in row
    )


def test_a_failed_externalsecret_gives_its_stores_reason(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """ESO validates a ClusterSecretStore by logging in: a wrong client secret is said there."""
    use_operator_api(world.project, "v1beta1")
    manifest = world.project / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n")
    )
    world.kube.objects.clear()
    world.kube.add("externalsecrets", {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "snowflake-credentials", "namespace": "floe-jobs", "labels": LABELS},
        "spec": {"secretStoreRef": {"kind": "ClusterSecretStore", "name": "floe-dev-snowflake-credentials"}},
        "status": {"conditions": [condition("Ready", "False", "SecretSyncedError",
                                            "could not get secret data from provider", timedelta(minutes=1))]},
    })  # fmt: skip
    world.kube.add("clustersecretstores", {
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "floe-dev-snowflake-credentials", "labels": LABELS},
        "status": {"conditions": [condition("Ready", "False", "InvalidProviderConfig",
                                            "unable to validate store: API error (401)", timedelta(minutes=1))]},
    })  # fmt: skip
    code, out, _ = run(capsys, "list")
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith("snowflake-credentials")]
    assert row.split(None, 3)[3] == (
        "Failed: SecretSyncedError: could not get secret data from provider (ClusterSecretStore "
        "floe-dev-snowflake-credentials: InvalidProviderConfig: unable to validate store: API error (401))"
    )


# --- the plugin interface -----------------------------------------------------------------


@pytest.fixture
def vault_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party package's entry point, as ``pip install floe-vault`` would add it."""
    from importlib.metadata import EntryPoint, entry_points

    fake = EntryPoint("vault", "test_day2:VaultPlugin", "floe.secrets")
    monkeypatch.setattr("floe_infra.model.registry.entry_points", lambda group: [*entry_points(group=group), fake])


def test_plugins_are_found_through_the_registry_and_entry_points(vault_installed: None) -> None:
    assert {"infisical", "k8s", "vault"} <= set(plugin_types())
    plugin = load_plugin("vault", PluginContext("dev", "dev"))
    assert isinstance(plugin, VaultPlugin)
    with pytest.raises(Exception, match=r"no secrets plugin 'consul': installed are infisical, k8s, vault"):
        load_plugin("consul", PluginContext("dev", "dev"))


def test_a_third_party_plugin_serves_the_cli_without_changes_here(
    project: Path, vault_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "manifest.yaml").write_text(
        "plugins:\n  secrets:\n    type: vault\n    config: {address: https://vault.example}\n"
        "secrets:\n  app-credentials:\n    keys:\n      TOKEN: {}\n"
    )
    code, out, _ = run(capsys, "validate")
    assert code == 0 and "OK app-credentials: exists, 1 key" in out
    code, _, err = run(capsys, "plan")
    assert code == 2
    assert "'vault' is a plugin of the floe CLI (validate, list, status); this Pulumi program deploys" in err


class VaultPlugin(SecretsPlugin):
    """A third-party plugin as a package would ship it."""

    def key_reports(self, references: Any) -> list[KeyReport]:
        where = self.context.options["address"]
        return [KeyReport(r.name, where, frozenset(k.name for k in r.keys)) for r in references]

    def sync_states(self, namespace: str | None) -> list[Any]:
        return []


def test_the_infisical_plugin_validates_its_own_config(world: World) -> None:
    """The generic PluginContext carries no backend's types: the plugin reads its options itself."""
    from floe_infra.errors import PluginError

    with pytest.raises(
        PluginError,
        match=r"plugins\.secrets\.config is missing or invalid: the infisical plugin "
        r"needs site_url and project_slug",
    ):
        load_plugin("infisical", PluginContext("dev", "dev", options={"site_url": "https://x.io"}))


def test_help_is_fast_because_it_imports_no_client() -> None:
    code = (
        "import sys\nfrom floe_infra.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pulumi', 'kubernetes', 'infisical_sdk', 'requests') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(("flag", "expected"), [(None, "floe-dev"), ("other", "other")], ids=["stack", "flag"])
def test_status_and_list_use_the_stacks_cluster_unless_told_another(
    project: Path, flag: str | None, expected: str
) -> None:
    """floe:kubeContext names the stack's cluster for Pulumi: the day-2 commands read the same one
    (not whatever context is current); --context overrides it."""
    from floe_infra.day2 import commands as day2

    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text() + "  floe:kubeContext: floe-dev\n")
    assert day2.open_target(project, "dev", None, flag).plugin.context.kube_context == expected


def test_validate_warns_when_the_operator_would_read_more_than_the_server_allows(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = world.project / "manifest.yaml"
    manifest.write_text(
        manifest.read_text().replace(
            "      resync_interval: 60s\n", "      resync_interval: 30s\n      read_budget: 3\n"
        )
    )
    code, _, err = run(capsys, "validate")
    assert code == 0  # a warning: the references themselves are fine
    assert "warning: the operator would read Infisical 4 times a minute (2 reads every 30s" in err
    assert "Fix: set resync_interval to at least 40s" in err
