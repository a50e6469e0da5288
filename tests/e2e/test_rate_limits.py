"""Sync at scale within Infisical's rate limits: the real server in production mode (its limits
on: 40 reads of /api/v4/secrets a minute per client address), the real operator logging in as the
identity the stack makes (its role: the manifest's folders only), 100 references over 10 folders.
With operator.sources: folder the operator's reads grow with folders (one shared
InfisicalStaticSecret per folder), so every Secret fills and follows a change within one refresh,
with no refused read; with prefix, one recursive read serves them all."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, ensure_namespaces, eventually, rolled_out_in, stop_operator
from harness.cluster import LocalCluster
from harness.localenv import Infisical, InfisicalAdmin, served_since, server_in_production

pytestmark = pytest.mark.e2e

ENV = "dev"
JOBS, OPERATOR_NS = "floe-jobs", "infisical"
REFERENCES, FOLDERS, INTERVAL = 100, 10, 20  # 10 reads every 20 s: 30 a minute, under the 40 allowed
READS = "/api/v4/secrets"  # the operator's v1beta1 list route (no other client here calls it)


@dataclass
class Scale:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    log: Path
    offset: int  # where the server's log stood when the operator started
    started: float = 0.0  # when the operator started (time.monotonic)
    values: dict[int, str] = field(default_factory=dict)  # folder -> its KEY's value

    def folder(self, n: int) -> str:
        return f"/{self.infisical.prefix}/scale/folder-{n}"

    def expected(self) -> dict[str, str]:
        return {f"ref-{i:03d}": self.values[i % FOLDERS] for i in range(REFERENCES)}

    def in_cluster(self) -> dict[str, str]:
        """KEY of every reference's Secret, in one list of the namespace's Secrets."""
        items = json.loads(self.cluster.kubectl("get", "secrets", "-n", JOBS, "-o", "json"))["items"]
        return {
            s["metadata"]["name"]: base64.b64decode(s["data"]["KEY"]).decode()
            for s in items
            if s["metadata"]["name"].startswith("ref-") and "KEY" in (s.get("data") or {})
        }

    def change_values(self) -> None:
        for n in range(FOLDERS):
            self.values[n] = f"value-{n}-{secrets.token_hex(6)}"
            self.infisical.set(ENV, self.folder(n), "KEY", self.values[n])


def manifest(infisical: Infisical, chart_repo: str, prefix: str) -> str:
    return yaml.safe_dump(
        {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": infisical.host,
                        "project_slug": infisical.project_slug,
                        "resync_interval": f"{INTERVAL}s",
                        "operator": {"chart_repo": chart_repo, "sources": "folder"},
                        # The operator's identity made by the stack, with its scoped role: the manifest's folders only.
                        "identities": "managed",
                        "identity": {"token_ttl": "60s", "token_max_ttl": "1h"},
                    },
                }
            },
            "secrets": {
                f"ref-{i:03d}": {
                    "path": f"/{prefix}/scale/folder-{i % FOLDERS}",
                    "namespace": JOBS,
                    "keys": {"KEY": {}},
                }
                for i in range(REFERENCES)
            },
        },
        sort_keys=False,
    )


@pytest.fixture(scope="module")
def scale(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
    infisical_admin: InfisicalAdmin,
) -> Iterator[Scale]:
    tmp = tmp_path_factory.mktemp("scale")
    with server_in_production() as log:
        pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig, manifest(infisical, chart_repo, infisical.prefix))
        stack = Scale(pulumi, cluster, infisical, log, 0)
        operator_log = None
        try:
            ensure_namespaces(cluster, JOBS, OPERATOR_NS)
            pulumi.init(
                [
                    ("floe:environment", ENV, False),
                    ("floe:createNamespaces", "false", False),
                    ("infisical:clientId", infisical_admin.client[0], False),
                    ("infisical:clientSecret", infisical_admin.client[1], True),
                ]
            )
            stack.change_values()
            pulumi.up()
            stack.offset, stack.started = log.stat().st_size, time.monotonic()
            operator_log = cluster.start_operator()
            yield stack
        finally:
            pulumi.destroy(remove=True, check=False)
            stop_operator(cluster, operator_log, "infisical-operator-rate-limits.log")
            names = [f"ref-{i:03d}" for i in range(REFERENCES)]
            cluster.kubectl("delete", "secret", *names, "-n", JOBS, "--ignore-not-found", "--wait=false")
            cluster.kubectl("delete", "deployment", "scale-app", "-n", JOBS, "--ignore-not-found", "--wait=false")
            infisical.remove_prefix(ENV)


def test_1_the_plan_reads_one_folder_once_and_fits_the_budget(scale: Scale) -> None:
    static = json.loads(
        scale.cluster.kubectl("get", "infisicalstaticsecrets", "-A", "-o", "json", "-l", "floe-infra/stack=dev")
    )["items"]
    assert len(static) == FOLDERS and {o["metadata"]["namespace"] for o in static} == {OPERATOR_NS}
    assert sorted(len(o["spec"]["targets"]) for o in static) == [REFERENCES // FOLDERS] * FOLDERS
    said = scale.pulumi.preview(expect_no_changes=True)
    assert "times a minute" not in said.stdout + said.stderr  # no read-budget warning


def test_2_every_secret_fills_and_follows_a_change_within_one_refresh(scale: Scale) -> None:
    _, filled = eventually(lambda: scale.in_cluster() == scale.expected(), "every Secret filled", 120)
    # A workload of the last reference of a shared object restarts when its folder changes.
    outputs = scale.pulumi.outputs()["secrets"]["ref-099"]
    scale.cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "scale-app", "namespace": JOBS, "annotations": outputs["workloadAnnotations"]},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "scale-app"}},
                    "template": {
                        "metadata": {"labels": {"app": "scale-app"}},
                        "spec": {
                            "containers": [
                                {"name": "app", "image": "floe/app:1", "envFrom": [{"secretRef": {"name": "ref-099"}}]}
                            ]
                        },
                    },
                },
            }
        ),
    )
    before, _ = eventually(lambda: rolled_out_in(scale.cluster, JOBS, "scale-app"), "the Deployment rolled out", 90)
    scale.change_values()
    changed = time.monotonic()
    # Within one refresh, plus the operator's reconcile of the folders' objects (one at a time).
    eventually(lambda: scale.in_cluster() == scale.expected(), "every Secret follows its folder", INTERVAL + 15)
    print(
        f"\n{REFERENCES} references in {FOLDERS} folders: filled in {filled:.0f}s, "
        f"followed a change in {time.monotonic() - changed:.0f}s (refresh {INTERVAL}s)"
    )

    def restarted() -> dict[str, Any] | None:
        d = rolled_out_in(scale.cluster, JOBS, "scale-app")
        return d if d and d["metadata"]["generation"] > before["metadata"]["generation"] else None

    after, _ = eventually(restarted, "the annotated Deployment of a shared object's target rolls out", 90)
    assert "secrets.infisical.com/managed-secret.ref-099" in after["spec"]["template"]["metadata"]["annotations"]


def test_3_list_and_status_report_every_reference_of_a_shared_object(scale: Scale) -> None:
    for command, column, ok in (("list", "sync_status", "Synced"), ("status", "message", "")):
        result = scale.pulumi.floe("secrets", command, "--stack", ENV, "--context", "floe-local", "--format", "json")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        rows = json.loads(result.stdout)["rows"]
        assert sorted(r["name"] for r in rows) == sorted(scale.expected())
        assert {r[column] for r in rows} == {ok}, rows[:3]


def test_4_the_operator_stayed_within_the_servers_limit(scale: Scale) -> None:
    time.sleep(max(0.0, 70 - (time.monotonic() - scale.started)))  # more than a minute of the operator's reads
    reads = [s for s in served_since(scale.log, scale.offset) if s.method == "GET" and s.url.startswith(READS)]
    assert reads, f"the server logged no {READS} read"
    span = max(r.at for r in reads) - min(r.at for r in reads)
    refused = [r for r in reads if r.status is not None and r.status != 200]  # None: answered after the log was read
    per_minute = max(sum(1 for r in reads if start <= r.at < start + 60) for start in (r.at for r in reads))
    print(f"\n{len(reads)} reads in {span:.0f}s, at most {per_minute} in a minute, {len(refused)} refused")
    assert refused == [], f"{len(refused)} reads refused, e.g. {refused[0]}"
    assert per_minute <= 40


def test_5_sources_prefix_reads_every_folder_in_one_request(scale: Scale) -> None:
    """Switched in one `up`: one object makes the one recursive read, the folders' objects go (their
    Secrets stay: they orphan them), and every Secret still follows its folder."""
    doc = yaml.safe_load((scale.pulumi.project / "manifest.yaml").read_text())
    doc["plugins"]["secrets"]["config"]["operator"]["sources"] = "prefix"
    scale.pulumi.write_manifest(yaml.safe_dump(doc, sort_keys=False))
    scale.pulumi.up()
    static = json.loads(
        scale.cluster.kubectl("get", "infisicalstaticsecrets", "-A", "-o", "json", "-l", "floe-infra/stack=dev")
    )["items"]
    assert [
        (o["metadata"]["name"], len(o["spec"]["targets"]), o["spec"]["sources"][0]["recursive"]) for o in static
    ] == [("floe-dev-all-folders", REFERENCES, True)]
    assert scale.in_cluster() == scale.expected(), "a Secret lost its value in the switch"
    offset = scale.log.stat().st_size
    scale.change_values()
    _, followed = eventually(
        lambda: scale.in_cluster() == scale.expected(), "every Secret follows its folder", INTERVAL + 15
    )
    time.sleep(INTERVAL)
    reads = [s for s in served_since(scale.log, offset) if s.method == "GET" and s.url.startswith(READS)]
    span = max(r.at for r in reads) - min(r.at for r in reads) if len(reads) > 1 else 0.0
    print(f"\nsources: prefix: {len(reads)} reads in {span:.0f}s, followed a change in {followed:.0f}s")
    assert all(r.status == 200 for r in reads) and 1 <= len(reads) <= span / INTERVAL + 2
    scale.pulumi.preview(expect_no_changes=True)
