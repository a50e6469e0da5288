"""External Secrets Operator for real: ESO's controller (v0.16.2, built from its module with only
its Infisical provider) runs out of cluster as its chart's ServiceAccount, next to the Infisical
operator (also as its chart's), against the real Infisical server. One reference moves between
the two, both ways and for both operator APIs, with its Secret polled every 0.2 s; `floe secrets
status` shows ESO's own conditions; the stores serve only their namespaces; and leaving ESO keeps
every Secret and ESO object. Steps run in order on one stack."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, eventually, keep_log, polling, stop_operator
from harness.cluster import LocalCluster
from harness.localenv import Infisical

pytestmark = pytest.mark.e2e

ENV = "dev"
JOBS = "floe-jobs"
ESO_NS = "external-secrets"
# kwok runs no pods, so nothing could serve ESO's admission webhook (its failurePolicy is Fail);
# the controller runs out of cluster and needs neither the webhook nor its cert controller.
ESO_VALUES = {"webhook": {"create": False}, "certController": {"create": False}}
ESO_CRDS = ("externalsecrets.external-secrets.io", "clustersecretstores.external-secrets.io")


@dataclass
class Eso:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    chart_repo: str
    values: dict[str, str] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    last_up: str = ""

    def folder(self, name: str) -> str:
        return f"/{self.infisical.prefix}/eso/{name}"

    def write(
        self, lake_via: str = "eso", api: str = "v1beta1", install: bool = True, extra: dict[str, Any] | None = None
    ) -> None:
        eso: dict[str, Any] = {
            "install": install,
            "chart_version": "0.16.2",
            "chart_repo": self.chart_repo,
            "values": ESO_VALUES,
        }
        manifest = {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": self.infisical.host,
                        "project_slug": self.infisical.project_slug,
                        "resync_interval": "5s",
                        "eso": eso,
                        "operator": {"chart_repo": self.chart_repo, "api": api},
                    },
                }
            },
            "secrets": {
                "lake": {"path": self.folder("lake"), "keys": {"LAKE_TOKEN": {}}, "via": lake_via},
                "ledger": {"path": self.folder("ledger"), "keys": {"LEDGER_KEY": {}}},
                **(extra or {}),
            },
        }
        self.pulumi.write_manifest(yaml.safe_dump(manifest, sort_keys=False))

    def kube(self, kind: str, name: str, namespace: str | None = JOBS) -> dict[str, Any] | None:
        where = ("-n", namespace) if namespace else ()
        out = self.cluster.kubectl("get", kind, name, *where, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def lake(self) -> dict[str, str] | None:
        return self.cluster.secret(JOBS, "lake")

    def synced(self) -> bool:
        return self.lake() == {"LAKE_TOKEN": self.values["lake"]}

    def change_lake(self) -> None:
        self.values["lake"] = f"lake-{secrets.token_hex(6)}"
        self.infisical.set(ENV, self.folder("lake"), "LAKE_TOKEN", self.values["lake"])

    def status(self, command: str = "status") -> tuple[int, dict[str, dict[str, Any]]]:
        """`floe secrets status` (or ``list``): its exit code and its rows by reference."""
        result = self.pulumi.floe("secrets", command, "--stack", ENV, "--context", "floe-local", "--format", "json")
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, {r["name"]: r for r in json.loads(result.stdout)["rows"]}

    def up_watching(self) -> list[tuple[bool, bool]]:
        """`pulumi up`, with the lake Secret polled every 0.2 s: (right data, has an owner)."""

        def poll() -> tuple[bool, bool]:
            secret = self.kube("secret", "lake")
            data = self.lake() if secret else None
            return data == {"LAKE_TOKEN": self.values["lake"]}, bool(
                secret and secret["metadata"].get("ownerReferences")
            )

        with polling(poll) as seen:
            self.last_up = self.pulumi.up().stdout
        return seen


@pytest.fixture(scope="module")
def eso(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Eso]:
    tmp = tmp_path_factory.mktemp("eso")
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig)
    stack = Eso(
        pulumi,
        cluster,
        infisical,
        chart_repo,
        values={"lake": f"lake-{secrets.token_hex(6)}", "ledger": f"ledger-{secrets.token_hex(6)}"},
    )
    stack.write()
    pulumi.init(infisical.stack_config(ENV, "floe-local"))
    infisical.set(ENV, stack.folder("lake"), "LAKE_TOKEN", stack.values["lake"])
    infisical.set(ENV, stack.folder("ledger"), "LEDGER_KEY", stack.values["ledger"])
    try:
        pulumi.up()
        stack.logs["operator"] = cluster.start_operator()
        stack.logs["eso"] = cluster.start_eso()
        yield stack
    finally:
        pulumi.destroy(remove=True, check=False)
        cluster.stop_eso()
        stop_operator(cluster, stack.logs.get("operator"), "infisical-operator-eso.log")
        keep_log(stack.logs.get("eso"), "external-secrets.log")
        for name in ("lake", "ledger", "ghost", "users-own", "stolen"):
            cluster.kubectl("delete", "secret", name, "-n", JOBS, "--ignore-not-found", "--wait=false")
        for kind, name, namespace in [
            ("externalsecret", "users-own", JOBS),
            ("secretstore", "users-own", JOBS),
            ("namespace", "intruder", None),
        ]:
            cluster.kubectl(
                "delete", kind, name, *(("-n", namespace) if namespace else ()), "--ignore-not-found", "--wait=false"
            )
        infisical.remove_prefix(ENV)


def test_1_eso_fills_the_secret_as_its_charts_service_account_and_status_shows_its_conditions(eso: Eso) -> None:
    eventually(eso.synced, "ESO filled the lake Secret with Infisical's value", 90)
    eventually(
        lambda: eso.cluster.secret(JOBS, "ledger") == {"LEDGER_KEY": eso.values["ledger"]},
        "the operator filled the ledger Secret",
    )
    account = json.loads((eso.cluster.state_dir / "external-secrets.kubeconfig").read_text())["users"][0]["name"]
    assert account == f"system:serviceaccount:{ESO_NS}:external-secrets"
    assert eso.cluster.can_operator("create", "secrets", "-n", JOBS, chart="external-secrets")
    assert not eso.cluster.can_operator("create", "clusterrolebindings", chart="external-secrets")
    assert not eso.cluster.can_operator(
        "create", "customresourcedefinitions.apiextensions.k8s.io", chart="external-secrets"
    )
    code, rows = eso.status("list")
    assert code == 0 and (rows["lake"]["type"], rows["lake"]["sync_status"]) == ("ExternalSecret", "Synced"), rows
    assert rows["ledger"]["type"] == "InfisicalStaticSecret"
    code, rows = eso.status()
    assert code == 0 and rows["lake"]["message"] == "" and rows["lake"]["last_sync"] != "never", rows
    secret = eso.kube("secret", "lake")
    assert secret is not None and not secret["metadata"].get("ownerReferences")  # creationPolicy: Orphan
    eso.pulumi.preview(expect_no_changes=True)


@pytest.mark.parametrize("api", ["v1beta1", "v1alpha1"])
def test_2_a_reference_moves_to_the_operator_and_back_to_eso_with_its_secret_always_right(
    eso: Eso,
    api: str,
) -> None:
    """Each `up` creates the new sync object before it deletes the old (which orphans the Secret):
    at every poll the Secret exists, holds Infisical's value and has no owner for the garbage
    collector to follow; afterwards a change in Infisical arrives through the new mechanism."""
    if api == "v1alpha1":
        eso.write(lake_via="eso", api=api)
        eso.pulumi.up()
    operator_kind = "InfisicalStaticSecret" if api == "v1beta1" else "InfisicalSecret"
    for via, kind, other in [("operator", operator_kind, "ExternalSecret"), ("eso", "ExternalSecret", operator_kind)]:
        eso.write(lake_via=via, api=api)
        seen = eso.up_watching()
        assert len(seen) > 10 and all(ok for ok, _ in seen), f"the Secret was missing or wrong ({api} → {via})"
        assert not any(owned for _, owned in seen), "the Secret had an owner: garbage collection could delete it"
        # Deleted with propagation orphan: the garbage collector drops its `orphan` finalizer.
        gone = other.lower()
        eventually(lambda: eso.kube(gone, "lake") is None, f"the {other} that filled it before is gone", 30)  # noqa: B023
        eso.change_lake()
        eventually(eso.synced, f"a new value reaches the Secret through {kind}", 90)
        time.sleep(2)  # one more poll: nothing takes the Secret away after the switch
        assert eso.synced()
        _, rows = eso.status("list")
        assert rows["lake"]["type"] == kind, rows
        eso.pulumi.preview(expect_no_changes=True)


def test_3_status_shows_esos_reason_for_a_missing_folder_and_a_wrong_client_secret(eso: Eso) -> None:
    eso.write(extra={"ghost": {"path": eso.folder("nowhere"), "keys": {"GHOST": {}}, "via": "eso"}})
    eso.pulumi.up()

    def ghost_failed() -> dict[str, Any] | None:
        code, rows = eso.status()
        row = rows.get("ghost")
        return row if code != 0 and row and row["message"].startswith("Failed: ") else None

    # Infisical lists a folder that does not exist as empty, so ESO fills an empty Secret and calls it
    # synced; status compares the Secret's keys with the manifest's and says what is missing.
    row, _ = eventually(ghost_failed, "floe secrets status: ghost Failed, naming the missing key", 90)
    print(f"a missing folder: {row['message']}")
    # ESO (deletionPolicy: Retain) makes no Secret for an empty folder, and calls it synced.
    assert (
        f"ExternalSecret reports success, but there is no Secret {JOBS}/ghost for the keys the manifest declares "
        f"(GHOST): does {eso.folder('nowhere')} hold them in Infisical?"
    ) in row["message"], row
    eso.write()
    eso.pulumi.up()
    good = eso.pulumi.config_get("floe:operatorClientSecret")
    eso.pulumi.config_set("floe:operatorClientSecret", "not-the-client-secret", secret=True)
    try:
        eso.pulumi.up()

        def lake_failed() -> dict[str, Any] | None:
            code, rows = eso.status()
            failed = code != 0 and rows["lake"]["message"].startswith("Failed: ")
            # ESO says why in the store's condition, when it checks the store (start_eso: every 15 s)
            return rows["lake"] if failed and "(ClusterSecretStore floe-dev-lake: " in rows["lake"]["message"] else None

        row, _ = eventually(lake_failed, "floe secrets status: lake Failed with its store's reason", 120)
        print(f"a wrong client secret: {row['message']}")
        assert "not-the-client-secret" not in json.dumps(row), row
        assert eso.synced(), "the Secret kept its last value while ESO could not log in"
    finally:
        eso.pulumi.config_set("floe:operatorClientSecret", good, secret=True)
        eso.pulumi.up()
    eso.change_lake()
    eventually(eso.synced, "ESO syncs again with the right client secret", 120)
    eso.pulumi.preview(expect_no_changes=True)


def test_4_a_store_serves_only_the_namespace_of_its_reference(eso: Eso) -> None:
    """Another namespace's ExternalSecret naming the stack's ClusterSecretStore gets nothing."""
    eso.cluster.kubectl("create", "namespace", "intruder")
    store = {"kind": "ClusterSecretStore", "name": "floe-dev-lake"}
    stolen = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": "stolen", "namespace": "intruder"},
        "spec": {
            "refreshInterval": "5s",
            "secretStoreRef": store,
            "target": {"name": "stolen"},
            "dataFrom": [{"find": {"name": {"regexp": ".*"}}}],
        },
    }
    eso.cluster.kubectl("apply", "-f", "-", input=json.dumps(stolen))

    def refused() -> str | None:
        found = eso.kube("externalsecret", "stolen", "intruder") or {}
        ready = [c for c in (found.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
        return ready[0].get("message") if ready and ready[0].get("status") == "False" else None

    message, _ = eventually(refused, "ESO refuses the other namespace's ExternalSecret", 60)
    assert eso.kube("secret", "stolen", "intruder") is None, f"the store served another namespace: {message}"
    # Not a failure of any other kind: ESO's own refusal (client_manager.go errClusterStoreMismatch),
    # which it logs; the ExternalSecret's condition says only "could not get secret data from provider".
    # (ESO logs JSON: the quotes in its message are escaped there.)
    refusal = (
        r"using cluster store \"floe-dev-lake\" is not allowed from namespace \"intruder\": denied by spec.condition"
    )
    assert refusal in eso.logs["eso"].read_text(), message
    eso.cluster.kubectl("delete", "namespace", "intruder", "--wait=false")


def test_5_leaving_eso_keeps_every_secret_and_every_eso_object(eso: Eso) -> None:
    """The README's steps: move the last reference to the operator (ESO stays installed), then set
    eso.install: false. The release goes; its CRDs (the stack's, kept on delete) and so every ESO
    object stay, with what they own, here a team's own ExternalSecret and its Secret."""
    meta = {"name": "users-own", "namespace": JOBS}
    own = [
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "SecretStore",
            "metadata": meta,
            "spec": {"provider": {"fake": {"data": [{"key": "TEAM_KEY", "value": "team-value"}]}}},
        },
        {
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": meta,
            "spec": {
                "refreshInterval": "5s",
                "secretStoreRef": {"kind": "SecretStore", "name": "users-own"},
                "target": {"name": "users-own", "creationPolicy": "Owner"},
                "data": [{"secretKey": "TEAM_KEY", "remoteRef": {"key": "TEAM_KEY"}}],
            },
        },
    ]
    eso.cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": own}))
    eventually(
        lambda: eso.cluster.secret(JOBS, "users-own") == {"TEAM_KEY": "team-value"},
        "ESO filled the team's own Secret (owned by its ExternalSecret)",
        60,
    )
    eso.write(lake_via="operator")
    seen = eso.up_watching()
    assert seen and all(ok for ok, _ in seen), "the Secret was missing or wrong when the last via: eso went"
    assert eso.kube("deployment", "external-secrets", ESO_NS) is not None, "ESO went with its last reference"
    eso.cluster.stop_eso()  # its ServiceAccount goes with the release, and its token with it
    eso.write(lake_via="operator", install=False)
    eso.pulumi.up()
    assert eso.kube("deployment", "external-secrets", ESO_NS) is None, "the ESO release is still installed"
    for crd in ESO_CRDS:
        found = eso.kube("crd", crd, None)
        assert found is not None, f"CRD {crd} went with the release"
        assert found["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    time.sleep(5)  # the garbage collector's turn
    assert eso.kube("externalsecret", "users-own") is not None
    assert eso.cluster.secret(JOBS, "users-own") == {"TEAM_KEY": "team-value"}
    eso.change_lake()
    eventually(eso.synced, "the operator keeps the last reference in sync", 90)
    eso.pulumi.preview(expect_no_changes=True)
