"""Secrets reach pods: after `pulumi up`, the real Infisical operator (run out of cluster against the
local API server) fills each reference's Secret with the real Infisical server's values, follows
rotations, restarts the workloads that ask for it, and `floe secrets status` reports what it did.
Steps run in order on one stack."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, eventually, polling, rolled_out_in, stop_operator
from harness.cluster import LocalCluster
from harness.localenv import Infisical

pytestmark = pytest.mark.e2e

ENV = "dev"
RESYNC = 5  # seconds: the operator's smallest interval, and this stack's
JOBS = "floe-jobs"
MARK = "secrets.infisical.com/managed-secret.snowflake-credentials"  # the operator's, on the pod template


def manifest(infisical: Infisical, chart_repo: str, api: str | None) -> dict[str, Any]:
    operator: dict[str, Any] = {"chart_repo": chart_repo, **({"api": api} if api else {})}
    folder = f"/{infisical.prefix}/sync"  # under the run's folder, which the fixture removes
    return {
        "plugins": {
            "secrets": {
                "type": "infisical",
                "config": {
                    "site_url": infisical.host,
                    "project_slug": infisical.project_slug,
                    "resync_interval": f"{RESYNC}s",
                    "operator": operator,
                },
            }
        },
        "compute": {"type": "snowflake", "connection_secret_ref": "snowflake-credentials"},
        "secrets": {
            "snowflake-credentials": {
                "path": f"{folder}/compute/snowflake",
                "keys": {
                    "SNOWFLAKE_ACCOUNT": {},
                    "SNOWFLAKE_USER": {"config": True},
                    "SNOWFLAKE_PASSWORD": {"generate": {"length": 32, "special": False}},
                },
            },
            "dagster-db": {
                "path": f"{folder}/dagster",
                "auto_reload": False,
                "keys": {"DATABASE_URL": {"config": True}},
            },
        },
    }


@dataclass
class Synced:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    chart_repo: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def snowflake(self) -> str:
        return f"/{self.infisical.prefix}/sync/compute/snowflake"

    def write_manifest(self, api: str | None) -> None:
        text = yaml.safe_dump(manifest(self.infisical, self.chart_repo, api), sort_keys=False)
        self.pulumi.write_manifest(text)

    def kube(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def secret_data(self, name: str) -> dict[str, str] | None:
        secret = self.kube("secret", JOBS, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def floe(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`floe secrets ARGS` for the stack, through the cluster's own kubeconfig context."""
        kubeconfig = str(self.cluster.kubeconfig)
        return self.pulumi.floe("secrets", *args, "--stack", ENV, "--context", "floe-local", KUBECONFIG=kubeconfig)

    def status(self) -> tuple[int, list[dict[str, Any]]]:
        result = self.floe("status", "--format", "json")
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, list(json.loads(result.stdout)["rows"])

    def all_synced(self) -> list[dict[str, Any]] | None:
        """`floe secrets status` rows once it exits 0 with every reference synced (no message)."""
        code, rows = self.status()
        return rows if code == 0 and rows and all(r["message"] == "" for r in rows) else None

    def expected(self) -> dict[str, dict[str, str]]:
        get = self.infisical.get
        password = get(ENV, self.snowflake, "SNOWFLAKE_PASSWORD")
        assert password is not None
        return {
            "snowflake-credentials": {
                "SNOWFLAKE_ACCOUNT": self.values["account"],
                "SNOWFLAKE_USER": self.values["user"],
                "SNOWFLAKE_PASSWORD": password,
            },
            "dagster-db": {"DATABASE_URL": self.values["database"]},
        }


@pytest.fixture(scope="module")
def synced(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Synced]:
    tmp = tmp_path_factory.mktemp("sync")
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig)
    stack = Synced(
        pulumi,
        cluster,
        infisical,
        chart_repo,
        {
            "user": f"user-{secrets.token_hex(6)}",
            "database": f"postgres://u-{secrets.token_hex(6)}@db/floe",
            "account": f"account-{secrets.token_hex(6)}",
        },
    )
    stack.write_manifest("v1alpha1")
    pulumi.init(
        [
            *infisical.stack_config(ENV, "floe-local"),
            ("floe:secretValues.snowflake-credentials.SNOWFLAKE_USER", stack.values["user"], True),
            ("floe:secretValues.dagster-db.DATABASE_URL", stack.values["database"], True),
        ]
    )
    infisical.set(ENV, stack.snowflake, "SNOWFLAKE_ACCOUNT", stack.values["account"])  # by a person, beforehand
    log = None
    try:
        pulumi.up()
        log = cluster.start_operator()
        yield stack
    finally:
        pulumi.destroy(remove=True, check=False)
        stop_operator(cluster, log, "infisical-operator.log")
        for name in ("snowflake-credentials", "dagster-db", "reloaded", "steady"):
            for kind in ("secret", "deployment"):
                cluster.kubectl("delete", kind, name, "-n", JOBS, "--ignore-not-found", "--wait=false")


def test_1_the_operator_fills_each_secret_with_infisicals_values(synced: Synced) -> None:
    for name, want in synced.expected().items():
        got, _ = eventually(lambda name=name: synced.secret_data(name), f"the Secret {JOBS}/{name}")  # type: ignore[misc]
        assert got == want, f"{name}: the Secret holds other keys or values than Infisical"


def test_1b_the_operator_runs_with_the_charts_rights_not_the_admins(synced: Synced) -> None:
    """Out of cluster, but as the chart's ServiceAccount (a token by TokenRequest): what the chart's
    RBAC does not allow fails here as it would in a cluster, and test 1 synced with these rights."""
    cluster = synced.cluster
    account = json.loads((cluster.state_dir / "secrets-operator.kubeconfig").read_text())["users"][0]["name"]
    assert account.startswith("system:serviceaccount:infisical:")
    assert cluster.can_operator("get", "secrets", "--all-namespaces")
    assert cluster.can_operator("list", "infisicalstaticsecrets.secrets.infisical.com", "--all-namespaces")
    assert not cluster.can_operator("create", "clusterrolebindings")
    assert not cluster.can_operator("delete", "namespaces")
    assert not cluster.can_operator("create", "customresourcedefinitions.apiextensions.k8s.io")


def test_2_status_and_list_report_every_reference_synced(synced: Synced) -> None:
    rows, _ = eventually(synced.all_synced, "floe secrets status: every reference synced")
    assert {r["name"] for r in rows} == {"snowflake-credentials", "dagster-db"}
    assert all(r["last_sync"] != "never" for r in rows)
    listing = synced.floe("list")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    lines = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert sorted((cells[0], cells[2], cells[3]) for cells in lines) == [
        ("dagster-db", "InfisicalSecret", "Synced"),
        ("snowflake-credentials", "InfisicalSecret", "Synced"),
    ]


def workload(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": JOBS, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "job",
                            "image": "floe/job:1",
                            "envFrom": [{"secretRef": {"name": "snowflake-credentials"}}],
                        },
                    ]
                },
            },
        },
    }


def replica_sets(synced: Synced, name: str) -> set[str]:
    out = json.loads(synced.cluster.kubectl("get", "replicaset", "-n", JOBS, "-l", f"app={name}", "-o", "json"))
    return {rs["metadata"]["name"] for rs in out["items"]}


def test_3_a_rotation_reaches_the_secret_and_restarts_only_annotated_workloads(synced: Synced) -> None:
    outputs = synced.pulumi.outputs()["secrets"]["snowflake-credentials"]
    assert outputs["podSpec"] == {"envFrom": [{"secretRef": {"name": "snowflake-credentials"}}]}
    deployments = [workload("reloaded", outputs["workloadAnnotations"]), workload("steady", {})]
    synced.cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": deployments})
    )

    def marked(name: str) -> dict[str, Any] | None:
        """Rolled out, with the operator's mark of the Secret version it last saw (the operator
        marks an annotated workload on its first reconcile after the workload appears)."""
        d = rolled_out_in(synced.cluster, JOBS, name)
        return d if d and MARK in (d["spec"]["template"]["metadata"].get("annotations") or {}) else None

    before = {}
    for name, ready in (("reloaded", marked), ("steady", partial(rolled_out_in, synced.cluster, JOBS))):
        d, _ = eventually(partial(ready, name), f"Deployment {name} rolled out", 90)
        before[name] = (d["metadata"]["generation"], replica_sets(synced, name), d["spec"]["template"])
    # By `pulumi up`, for a `config: true` key.
    synced.values["user"] = f"user-{secrets.token_hex(6)}"
    synced.pulumi.config_set(
        "floe:secretValues.snowflake-credentials.SNOWFLAKE_USER", synced.values["user"], secret=True, path=True
    )
    synced.pulumi.up()
    eventually(
        lambda: (synced.secret_data("snowflake-credentials") or {}).get("SNOWFLAKE_USER") == synced.values["user"],
        "the Secret follows a value `pulumi up` wrote",
    )

    def restarted() -> dict[str, Any] | None:
        d = rolled_out_in(synced.cluster, JOBS, "reloaded")
        return d if d and d["metadata"]["generation"] > before["reloaded"][0] else None

    reloaded, _ = eventually(restarted, "the annotated Deployment rolls out a new template", 90)
    mark = reloaded["spec"]["template"]["metadata"]["annotations"][MARK]
    assert mark != before["reloaded"][2]["metadata"]["annotations"][MARK], "the template names the old version"
    assert len(replica_sets(synced, "reloaded") - before["reloaded"][1]) == 1, "not one new ReplicaSet"
    # Out of band, in Infisical, for a key set by hand.
    synced.values["account"] = f"account-{secrets.token_hex(6)}"
    synced.infisical.set(ENV, synced.snowflake, "SNOWFLAKE_ACCOUNT", synced.values["account"])
    eventually(
        lambda: synced.secret_data("snowflake-credentials") == synced.expected()["snowflake-credentials"],
        "the Secret follows a value changed in Infisical",
    )
    steady = synced.kube("deployment", JOBS, "steady")
    assert steady is not None
    assert (steady["metadata"]["generation"], replica_sets(synced, "steady"), steady["spec"]["template"]) == before[
        "steady"
    ], "a Deployment without the annotation was restarted"
    synced.pulumi.preview(expect_no_changes=True)


def test_4_a_wrong_operator_client_secret_shows_as_failed_with_the_operators_reason(synced: Synced) -> None:
    """The operator keeps a login per object while it works: a new process (a pod restart) is what
    meets a wrong secret."""
    real = synced.infisical.viewer[1]
    synced.pulumi.config_set("floe:operatorClientSecret", "not-the-secret-" + secrets.token_hex(8), secret=True)
    synced.pulumi.up()
    synced.cluster.stop_operator()
    synced.cluster.start_operator()
    try:

        def failed() -> list[dict[str, Any]] | None:
            code, rows = synced.status()
            return rows if code == 1 and all(r["message"].startswith("Failed") for r in rows) else None

        rows, _ = eventually(failed, "floe secrets status reports the wrong credentials")
        text = synced.floe("status")
        assert text.returncode == 1
        assert "Traceback" not in text.stderr
        for row in rows:
            assert "authenticate" in row["message"].lower() or "401" in row["message"], row["message"]
    finally:
        synced.pulumi.config_set("floe:operatorClientSecret", real, secret=True)
        synced.pulumi.up()
        synced.cluster.stop_operator()
        synced.cluster.start_operator()
    eventually(synced.all_synced, "every reference synced again with the right secret")
    synced.pulumi.preview(expect_no_changes=True)


def test_5_switching_to_v1beta1_keeps_the_secret_and_syncs_it_the_same(synced: Synced) -> None:
    """The manifest no longer names `operator.api`: the default, v1beta1, takes over on the next `up`
    (the InfisicalStaticSecret is created before the InfisicalSecret is deleted)."""
    want = synced.expected()
    synced.write_manifest(None)
    with polling(lambda: [name for name, data in want.items() if synced.secret_data(name) != data]) as seen:
        synced.pulumi.up()
        time.sleep(2 * RESYNC)
    gaps = sorted({name for names in seen for name in names})
    assert len(seen) > 10 and gaps == [], f"a Secret was missing or changed during the switch: {gaps}"
    assert synced.kube("infisicalsecret", JOBS, "snowflake-credentials") is None
    assert synced.kube("infisicalstaticsecret", JOBS, "snowflake-credentials") is not None
    # The new object syncs: a change in Infisical arrives through it, and restarts the workload.
    generation = (synced.kube("deployment", JOBS, "reloaded") or {})["metadata"]["generation"]
    synced.values["account"] = f"account-{secrets.token_hex(6)}"
    synced.infisical.set(ENV, synced.snowflake, "SNOWFLAKE_ACCOUNT", synced.values["account"])
    eventually(
        lambda: synced.secret_data("snowflake-credentials") == synced.expected()["snowflake-credentials"],
        "the Secret follows Infisical through the InfisicalStaticSecret",
    )
    eventually(
        lambda: (d := rolled_out_in(synced.cluster, JOBS, "reloaded")) and d["metadata"]["generation"] > generation,
        "the annotated Deployment rolls out after a v1beta1 sync",
        90,
    )
    rows, _ = eventually(synced.all_synced, "floe secrets status: every InfisicalStaticSecret synced")
    assert {r["name"] for r in rows} == {"snowflake-credentials", "dagster-db"}
    listing = synced.floe("list")
    assert listing.stdout.count("InfisicalStaticSecret") == 2 and listing.returncode == 0
    synced.pulumi.preview(expect_no_changes=True)


def test_6_destroy_keeps_the_secrets_pods_read_and_removes_what_the_stack_wrote(synced: Synced) -> None:
    synced.pulumi.destroy()
    assert synced.kube("infisicalstaticsecret", JOBS, "snowflake-credentials") is None
    # The README: no sync object owns its Secret, so removing the stack leaves the Secrets pods read.
    assert synced.secret_data("snowflake-credentials") is not None
    assert synced.secret_data("dagster-db") == {"DATABASE_URL": synced.values["database"]}
    get = synced.infisical.get
    assert get(ENV, synced.snowflake, "SNOWFLAKE_USER") is None
    assert get(ENV, synced.snowflake, "SNOWFLAKE_PASSWORD") is None
    assert get(ENV, synced.snowflake, "SNOWFLAKE_ACCOUNT") == synced.values["account"]
