"""operator.auth: kubernetes against the real server and the real operator: the identity's Kubernetes
Auth is configured on the server as Infisical's docs describe (the API server's address and CA, a
token-reviewer JWT of a ServiceAccount bound to system:auth-delegator, the allowed namespace and
ServiceAccount); the server asks the local API server's TokenReview about each login. A stack moves
from universal to kubernetes auth and keeps syncing with no client secret left in the cluster.
Steps run in order on one stack."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Pulumi, eventually, stop_operator
from harness.cluster import LocalCluster
from harness.localenv import Infisical, InfisicalAdmin

pytestmark = pytest.mark.e2e

ENV = "dev"
JOBS = "floe-jobs"
OPERATOR_NS = "infisical"
ACCOUNT = "infisical-auth"  # the manifest's default operator.service_account
REVIEWER = "floe-e2e-token-reviewer"
RELEASE = "infisical-secrets-operator"


@dataclass
class Stack:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    chart_repo: str
    identity_id: str
    admin: InfisicalAdmin
    operator: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"/{self.infisical.prefix}/k8s-auth/warehouse"

    def write_manifest(self) -> None:
        manifest = {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": self.infisical.host,
                        "project_slug": self.infisical.project_slug,
                        "resync_interval": "5s",
                        "operator": {"chart_repo": self.chart_repo, **self.operator},
                    },
                }
            },
            "secrets": {
                "warehouse-credentials": {
                    "path": self.folder,
                    "keys": {
                        "WAREHOUSE_TOKEN": {},
                        "WAREHOUSE_USER": {"config": True},
                    },
                }
            },
        }
        self.pulumi.write_manifest(yaml.safe_dump(manifest, sort_keys=False))

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        out = self.cluster.kubectl("get", "secret", name, "-n", namespace, "-o", "json", "--ignore-not-found")
        if not out.strip():
            return None
        return {k: base64.b64decode(v).decode() for k, v in (json.loads(out).get("data") or {}).items()}

    def expected(self) -> dict[str, str]:
        return {"WAREHOUSE_TOKEN": self.values["token"], "WAREHOUSE_USER": self.values["user"]}

    def synced(self) -> bool:
        return self.secret_data(JOBS, "warehouse-credentials") == self.expected()

    def status(self) -> tuple[int, list[dict[str, Any]]]:
        result = floe_secrets(self, "status", "--format", "json")
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, list(json.loads(result.stdout)["rows"])

    def all_synced(self) -> bool:
        code, rows = self.status()
        return code == 0 and [(r["name"], r["message"]) for r in rows] == [("warehouse-credentials", "")]

    def rotate_in_infisical(self) -> None:
        """A value changed by a person in Infisical: only a working login brings it to the Secret."""
        self.values["token"] = f"token-{secrets.token_hex(6)}"
        self.infisical.set(ENV, self.folder, "WAREHOUSE_TOKEN", self.values["token"])


def floe_secrets(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`floe secrets ARGS` for the stack, through the cluster's own kubeconfig context."""
    kubeconfig = str(stack.cluster.kubeconfig)
    return stack.pulumi.floe("secrets", *args, "--stack", ENV, "--context", "floe-local", KUBECONFIG=kubeconfig)


@pytest.fixture(scope="module")
def stack(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
    infisical_admin: InfisicalAdmin,
) -> Iterator[Stack]:
    admin = infisical_admin
    server, ca = cluster.api_server()
    identity = admin.kubernetes_identity(
        f"floe-e2e-k8s-{secrets.token_hex(4)}",
        host=server,
        ca=ca,
        reviewer_jwt=cluster.token_reviewer_jwt(REVIEWER),
        namespace=OPERATOR_NS,
        service_account=ACCOUNT,
    )
    tmp = tmp_path_factory.mktemp("k8s-auth")
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig)
    stack = Stack(
        pulumi,
        cluster,
        infisical,
        chart_repo,
        identity,
        admin,
        values={"token": f"token-{secrets.token_hex(6)}", "user": f"user-{secrets.token_hex(6)}"},
    )
    log = None
    try:
        stack.write_manifest()  # universal auth first: the viewer identity's client id and secret
        user = ("floe:secretValues.warehouse-credentials.WAREHOUSE_USER", stack.values["user"], True)
        pulumi.init([*infisical.stack_config(ENV, "floe-local"), user])
        infisical.set(ENV, stack.folder, "WAREHOUSE_TOKEN", stack.values["token"])
        pulumi.up()
        log = cluster.start_operator()
        eventually(stack.synced, "the Secret synced with universal auth")
        yield stack
    finally:
        pulumi.destroy(remove=True, check=False)
        stop_operator(cluster, log, "infisical-operator-kubernetes-auth.log")
        admin.delete_identity(identity)
        cluster.kubectl("delete", "secret", "warehouse-credentials", "-n", JOBS, "--ignore-not-found", "--wait=false")
        cluster.remove_token_reviewer(REVIEWER)


def test_1_switching_to_kubernetes_auth_keeps_syncing_and_leaves_no_client_secret(stack: Stack) -> None:
    assert stack.secret_data(OPERATOR_NS, "infisical-machine-identity") is not None  # universal auth's
    stack.operator = {"auth": "kubernetes"}
    stack.write_manifest()
    for key in ("floe:operatorClientId", "floe:operatorClientSecret"):
        stack.pulumi.config_rm(key)
    stack.pulumi.config_set("floe:operatorIdentityId", stack.identity_id)
    stack.pulumi.up()
    assert stack.secret_data(OPERATOR_NS, "infisical-machine-identity") is None, "the identity Secret stayed behind"
    assert stack.secret_data(OPERATOR_NS, "infisical-identity-id") == {"identityId": stack.identity_id}
    account = stack.cluster.kubectl("get", "serviceaccount", ACCOUNT, "-n", OPERATOR_NS, "-o", "name").strip()
    assert account == f"serviceaccount/{ACCOUNT}"
    # The value moves in Infisical: the operator brings it with a login by the ServiceAccount's token.
    stack.rotate_in_infisical()
    eventually(stack.synced, "the Secret follows Infisical with Kubernetes Auth")
    eventually(stack.all_synced, "floe secrets status: synced")
    # No Secret anywhere in the cluster holds a client secret, nor a key of that name.
    known = stack.admin.client_secrets()
    assert known, "no client secrets to look for"
    holders = [
        (ns, name)
        for ns, name, data in stack.cluster.secrets()
        if known & set(data.values()) or {"clientId", "clientSecret"} & set(data)
    ]
    assert holders == [], f"Secrets holding a client secret: {holders}"
    stack.pulumi.preview(expect_no_changes=True)


def test_2_the_charts_rbac_lets_the_operator_request_the_token(stack: Stack) -> None:
    """The operator runs here out of cluster with the admin's kubeconfig; in a cluster it runs as
    the chart's ServiceAccount, which must be allowed the TokenRequest for the auth ServiceAccount."""
    chart_account = stack.cluster.kubectl(
        "get",
        "serviceaccount",
        "-n",
        OPERATOR_NS,
        "-l",
        f"app.kubernetes.io/instance={RELEASE}",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).split()
    assert len(chart_account) == 1, chart_account
    allowed = stack.cluster.kubectl(
        "auth",
        "can-i",
        "create",
        f"serviceaccounts/{ACCOUNT}",
        "--subresource",
        "token",
        "-n",
        OPERATOR_NS,
        "--as",
        f"system:serviceaccount:{OPERATOR_NS}:{chart_account[0]}",
    )
    assert allowed.strip() == "yes"


def test_3_a_service_account_the_identity_does_not_allow_shows_the_servers_reason(stack: Stack) -> None:
    stack.operator = {"auth": "kubernetes", "service_account": "floe-not-allowed"}
    stack.write_manifest()
    stack.pulumi.up()
    try:

        def refused() -> list[dict[str, Any]] | None:
            code, rows = stack.status()
            return rows if code == 1 and rows and all("K8s name not allowed" in r["message"] for r in rows) else None

        rows, _ = eventually(refused, "floe secrets status shows the server's refusal", 90)
        assert "InfisicalAuth infisical/infisical-kubernetes" in rows[0]["message"]
        text = floe_secrets(stack, "status")
        assert text.returncode == 1 and "Traceback" not in text.stderr
    finally:
        stack.operator = {"auth": "kubernetes"}
        stack.write_manifest()
        stack.pulumi.up()
    stack.rotate_in_infisical()
    eventually(stack.synced, "the Secret syncs again with the allowed ServiceAccount", 90)
    stack.pulumi.preview(expect_no_changes=True)


def test_4_v1alpha1_infisical_secrets_log_in_the_same_way(stack: Stack) -> None:
    stack.operator = {"auth": "kubernetes", "api": "v1alpha1"}
    stack.write_manifest()
    stack.pulumi.up()
    stack.rotate_in_infisical()
    eventually(stack.synced, "the Secret follows Infisical through a v1alpha1 InfisicalSecret", 90)
    eventually(stack.all_synced, "floe secrets status: the InfisicalSecret synced")
    listing = floe_secrets(stack, "list", "--format", "json")
    assert [r["type"] for r in json.loads(listing.stdout)["rows"]] == ["InfisicalSecret"]
    stack.pulumi.preview(expect_no_changes=True)


def test_5_destroy_removes_the_service_account(stack: Stack) -> None:
    stack.pulumi.destroy()
    gone = stack.cluster.kubectl("get", "serviceaccount", ACCOUNT, "-n", OPERATOR_NS, "--ignore-not-found")
    assert gone.strip() == ""
    assert stack.secret_data(JOBS, "warehouse-credentials") == stack.expected()  # pods keep their Secret
