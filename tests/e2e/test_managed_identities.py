"""identities: managed against the real server and operator: with one admin credential, the stack
makes the operator's identity (a project viewer with Universal Auth and one client secret), keeps
the client secret only as a Pulumi secret, rotates it with no moment where the operator cannot log
in, is refused with a clear error when its identity may not do it, and destroy removes only what
it made. Steps run in order on one stack."""

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
from harness import Pulumi, eventually, killed_up, polling, stop_operator
from harness.cluster import LocalCluster
from harness.fault_proxy import Rule, fault_proxy
from harness.localenv import Infisical, InfisicalAdmin, InfisicalAdminError, env_file, server_state

pytestmark = pytest.mark.e2e

ENV = "dev"
JOBS = "floe-jobs"
OPERATOR_NS = "infisical"
AUTH = "infisical-universal"
READY = "secrets.infisical.com/IsReady"
TTL, MAX_TTL = 15, 20  # seconds: short enough to run out several times during a step


@dataclass
class Stack:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    admin: InfisicalAdmin
    chart_repo: str
    values: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return f"/{self.infisical.prefix}/managed/lake"

    def manifest(self, auth: str = "universal", site_url: str | None = None, **identity: str) -> str:
        return yaml.safe_dump(
            {
                "plugins": {
                    "secrets": {
                        "type": "infisical",
                        "config": {
                            "site_url": site_url or self.infisical.host,
                            "project_slug": self.infisical.project_slug,
                            "resync_interval": "5s",
                            "identities": "managed",
                            "identity": {"token_ttl": f"{TTL}s", "token_max_ttl": f"{MAX_TTL}s", **identity},
                            "operator": {"chart_repo": self.chart_repo, "auth": auth},
                        },
                    }
                },
                "secrets": {"lake-credentials": {"path": self.folder, "keys": {"LAKE_TOKEN": {}}}},
            },
            sort_keys=False,
        )

    def secret(self, name: str, namespace: str = JOBS) -> dict[str, str] | None:
        return self.cluster.secret(namespace, name)

    def synced(self) -> bool:
        return self.secret("lake-credentials") == {"LAKE_TOKEN": self.values["token"]}

    def rotate_in_infisical(self) -> None:
        self.values["token"] = f"token-{secrets.token_hex(6)}"
        self.infisical.set(ENV, self.folder, "LAKE_TOKEN", self.values["token"])

    def identity(self) -> dict[str, Any]:
        """The MachineIdentity's outputs, from the stack's state."""
        return self.outputs_of("MachineIdentity")

    def outputs_of(self, kind: str) -> dict[str, Any]:
        return self.pulumi.outputs_of(kind)

    def client_secrets(self, identity_id: str) -> list[dict[str, Any]]:
        return self.admin.identity_client_secrets(identity_id)

    def auth_ready(self) -> str | None:
        out = self.cluster.kubectl("get", "infisicalauth", AUTH, "-n", OPERATOR_NS, "-o", "json", "--ignore-not-found")
        conditions = (json.loads(out).get("status") or {}).get("conditions") or [] if out.strip() else []
        return next((c["status"] for c in conditions if c["type"] == READY), None)


def org_identity_names(admin: InfisicalAdmin) -> dict[str, str]:
    listed = admin.call("GET", f"/api/v1/identities?orgId={admin.org_id}")
    return {str(i["identity"]["id"]): str(i["identity"]["name"]) for i in listed["identities"]}


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
    tmp = tmp_path_factory.mktemp("managed")
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig)
    stack = Stack(pulumi, cluster, infisical, admin, chart_repo, values={"token": f"token-{secrets.token_hex(6)}"})
    log = None
    try:
        pulumi.write_manifest(stack.manifest())
        # One credential: the organisation admin identity, for Pulumi (it also writes values).
        pulumi.init(
            [
                ("floe:environment", ENV, False),
                ("floe:kubeContext", "floe-local", False),
                ("infisical:clientId", admin.client[0], False),
                ("infisical:clientSecret", admin.client[1], True),
            ]
        )
        infisical.set(ENV, stack.folder, "LAKE_TOKEN", stack.values["token"])
        pulumi.up()
        log = cluster.start_operator()
        yield stack
    finally:
        pulumi.destroy(remove=True, check=False)
        stop_operator(cluster, log, "infisical-operator-managed-identities.log")
        cluster.kubectl("delete", "secret", "lake-credentials", "-n", JOBS, "--ignore-not-found", "--wait=false")


def _up_watching(stack: Stack) -> list[bool]:
    """`pulumi up`, with the synced Secret polled every 0.2 s; what each poll saw."""
    with polling(stack.synced) as seen:
        stack.pulumi.up()
    return seen


def test_1_the_stack_makes_a_scoped_identity_whose_client_secret_is_only_a_pulumi_secret(stack: Stack) -> None:
    eventually(stack.synced, "the Secret synced with the identity the stack made")
    identity = stack.identity()
    assert identity["identity_name"].startswith(f"floe-{stack.infisical.project_slug}-dev-operator-")
    membership = stack.admin.call(
        "GET", f"/api/v2/workspace/{stack.admin.project_id}/identity-memberships/{identity['identity_id']}"
    )
    assert [r["customRoleSlug"] for r in membership["identityMembership"]["roles"]] == [
        stack.outputs_of("ProjectRole")["role_slug"]
    ]
    assert len(stack.client_secrets(identity["identity_id"])) == 1
    held = stack.secret("infisical-machine-identity", OPERATOR_NS)
    assert held is not None and held["clientId"] == identity["client_id"]
    assert held["clientSecret"] not in stack.pulumi.state(), "the client secret in plaintext in the state"
    assert held["clientSecret"] not in stack.pulumi.up().stdout


def test_2_a_preview_of_the_converged_stack_changes_nothing(stack: Stack) -> None:
    stack.pulumi.preview(expect_no_changes=True)


def test_2b_a_project_viewer_moves_to_its_own_role_in_one_up_with_the_secret_right_throughout(stack: Stack) -> None:
    """As a stack of the previous release (a project-wide viewer) does on its first `up` after the
    upgrade: the membership's role changes in place, the operator keeps reading."""
    identity_id = stack.identity()["identity_id"]
    path = f"/api/v2/workspace/{stack.admin.project_id}/identity-memberships/{identity_id}"
    stack.pulumi.write_manifest(stack.manifest(role="viewer"))
    stack.pulumi.up()
    assert [r["role"] for r in stack.admin.call("GET", path)["identityMembership"]["roles"]] == ["viewer"]
    stack.pulumi.write_manifest(stack.manifest())
    seen = _up_watching(stack)
    assert len(seen) > 3 and all(seen), "the Secret was missing or wrong while the identity moved to its role"
    roles = stack.admin.call("GET", path)["identityMembership"]["roles"]
    assert [r["customRoleSlug"] for r in roles] == [stack.outputs_of("ProjectRole")["role_slug"]]
    stack.rotate_in_infisical()
    eventually(stack.synced, "the Secret follows Infisical through the identity's own role")
    stack.pulumi.preview(expect_no_changes=True)


def test_3_a_rotation_makes_a_new_client_secret_and_revokes_the_old_once_the_operator_uses_the_new(
    stack: Stack,
) -> None:
    """The operator's InfisicalAuth is ready at every poll (0.2 s) during the `up`, and a value
    changed in Infisical as the `up` starts reaches the Secret: the operator never stopped syncing
    (the Secret alone would not show that: it keeps its data while the operator cannot log in)."""
    identity_id = stack.identity()["identity_id"]
    (old,) = stack.client_secrets(identity_id)
    before = stack.secret("infisical-machine-identity", OPERATOR_NS)
    previous = stack.values["token"]

    def held_and_ready() -> tuple[str | None, str | None]:
        return (stack.secret("lake-credentials") or {}).get("LAKE_TOKEN"), stack.auth_ready()

    stack.pulumi.config_set("floe:operatorSecretRotation", "r1")
    with polling(held_and_ready) as seen:
        stack.rotate_in_infisical()
        stack.pulumi.up()
        time.sleep(5)
    assert len(seen) > 10 and all(ready == "True" for _, ready in seen), f"the InfisicalAuth was not ready: {seen}"
    assert all(token in (previous, stack.values["token"]) for token, _ in seen), f"the Secret was missing: {seen}"
    assert any(token == stack.values["token"] for token, _ in seen), "the value changed in Infisical never arrived"
    (new,) = [s for s in stack.client_secrets(identity_id) if not s.get("isClientSecretRevoked")]
    assert new["id"] != old["id"], "the old client secret is still there, or no new one"
    assert int(new["clientSecretNumUses"]) >= 1, "revoked before the operator used the new one"
    after = stack.secret("infisical-machine-identity", OPERATOR_NS)  # the same Secret, new data
    assert after is not None and before is not None
    assert after["clientId"] == before["clientId"] and after["clientSecret"] != before["clientSecret"]
    stack.rotate_in_infisical()
    eventually(stack.synced, "the Secret follows Infisical with the new client secret")
    stack.pulumi.preview(expect_no_changes=True)


def test_4_an_identity_that_may_not_add_members_is_refused_with_the_permission_and_leaves_nothing(
    stack: Stack,
    tools_bin: Path,
    tmp_path: Path,
) -> None:
    """The viewer identity may create identities in this organisation (its org role is member) but
    not add one to the project: the error names both, and the identity it made is deleted again."""
    before = org_identity_names(stack.admin)
    other = Pulumi.on_copy(tmp_path, tools_bin, stack.cluster.kubeconfig, stack="staging")
    # A project-wide viewer: a role of its own would be refused first (the viewer may not make roles).
    other.write_manifest(stack.manifest(role="viewer"))
    viewer = stack.infisical.viewer
    other.init(
        [
            ("floe:environment", "staging", False),
            ("floe:kubeContext", "floe-local", False),
            ("infisical:clientId", viewer[0], False),
            ("infisical:clientSecret", viewer[1], True),
        ]
    )
    platform = "urn:pulumi:staging::floe::floe:secrets:Platform"
    targets = [
        f"{platform}::floe-secrets",
        f"{platform}$floe:secrets:InfisicalOperator::infisical-operator",
        f"{platform}$floe:secrets:InfisicalOperator$pulumi-python:dynamic/infisical:MachineIdentity::operator",
    ]
    try:
        # Only the identity: the first stack's release and namespaces are in the way of the rest.
        failed = other.up(target=targets, check=False)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert (
            f"machine identity {viewer[0]} (the one Pulumi uses, infisical:clientId) may not add machine identity "
            f"floe-{stack.infisical.project_slug}-staging-operator to project" in output
        ), output[-3000:]
        assert "You are not allowed to create on identity" in output and "a project role that may add members" in output
        assert "Traceback" not in output
        assert org_identity_names(stack.admin) == before, "an identity was left behind"
    finally:
        other.destroy(remove=True, check=False)


def test_4b_an_up_killed_inside_the_identity_create_leaves_no_identity_after_the_documented_recovery(
    stack: Stack,
    tools_bin: Path,
    tmp_path: Path,
) -> None:
    """A protected stack's `up` killed (SIGKILL) after Infisical made the identity and before the
    state recorded it. The README's recovery (cancel, refresh --clear-pending-creates, up, then
    delete the identities the warning names) converges, and no identity is left behind."""
    before = org_identity_names(stack.admin)
    made = f"floe-{stack.infisical.project_slug}-staging-operator-"
    other = Pulumi.on_copy(tmp_path, tools_bin, stack.cluster.kubeconfig, stack="staging")
    platform = "urn:pulumi:staging::floe::floe:secrets:Platform"
    targets = [
        f"{platform}::floe-secrets",
        f"{platform}$floe:secrets:InfisicalOperator::infisical-operator",
        f"{platform}$floe:secrets:InfisicalOperator$pulumi-python:dynamic/infisical:MachineIdentity::operator",
    ]
    target_args = [a for t in targets for a in ("--target", t)]
    with fault_proxy(stack.infisical.host) as proxy:
        # A project-wide viewer: only the identity is targeted (the first stack's release and
        # namespaces are in the way of the rest), and a scoped role would be a dependency.
        other.write_manifest(stack.manifest(role="viewer", site_url=proxy.url))
        admin = stack.admin.client
        other.init(
            [
                ("floe:environment", "staging", False),
                ("floe:kubeContext", "floe-local", False),
                ("floe:protect", "true", False),
                ("infisical:clientId", admin[0], False),
                ("infisical:clientSecret", admin[1], True),
            ]
        )
        proxy.add(Rule("POST", r"^/api/v1/identities$", "hold-answer", seconds=60))
        try:
            killed_up(
                other,
                lambda: any(n.startswith(made) for n in org_identity_names(stack.admin).values()),
                "Infisical made the identity",
                *target_args,
            )
            (leftover,) = [i for i, n in org_identity_names(stack.admin).items() if n.startswith(made)]
            assert "pending_operations" in other.state()
            other.cancel()
            other.refresh(clear_pending_creates=True)
            result = other.up(target=targets)
            output = result.stdout + result.stderr
            assert f"Infisical has other machine identities named {made[:-1]}-<nonce> ({leftover})" in output, output[
                -3000:
            ]
            kept = other.outputs_of("MachineIdentity")["identity_id"]
            assert kept != leftover
            # The README's last step: delete what the warning names (here through the API, as the UI does).
            stack.admin.delete_identity(leftover)
            assert set(org_identity_names(stack.admin)) == set(before) | {kept}
        finally:
            other("state", "unprotect", "--all", "--yes", check=False)
            other.destroy(remove=True, check=False)
    assert org_identity_names(stack.admin) == before, "an identity was left behind"


def test_5_destroy_deletes_the_identity_it_made_and_no_other(stack: Stack) -> None:
    identity_id = stack.identity()["identity_id"]
    others = set(org_identity_names(stack.admin)) - {identity_id}
    assert stack.infisical.get(ENV, stack.folder, "LAKE_TOKEN") == stack.values["token"]
    stack.pulumi.destroy()
    with pytest.raises(InfisicalAdminError) as gone:
        stack.admin.call("GET", f"/api/v1/identities/{identity_id}")
    assert gone.value.status == 404
    assert set(org_identity_names(stack.admin)) == others
    assert env_file(server_state() / "admin.env")["INFISICAL_ADMIN_IDENTITY_ID"] in others


def test_6_managed_kubernetes_auth_needs_no_credential_but_pulumis_own(
    stack: Stack,
    tools_bin: Path,
    tmp_path: Path,
) -> None:
    """identities: managed with operator.auth: kubernetes: the stack makes the identity, gives it
    Kubernetes Auth with a token reviewer it made in the cluster (its JWT and the CA read from the
    cluster by the provider, never in config or state), and the operator syncs with no client
    secret anywhere in the cluster."""
    other = Pulumi.on_copy(tmp_path, tools_bin, stack.cluster.kubeconfig)
    doc = yaml.safe_load(stack.manifest())
    doc["plugins"]["secrets"]["config"]["operator"]["auth"] = "kubernetes"
    other.write_manifest(yaml.safe_dump(doc, sort_keys=False))
    other.init(
        [
            ("floe:environment", ENV, False),
            ("floe:kubeContext", "floe-local", False),
            ("infisical:clientId", stack.admin.client[0], False),
            ("infisical:clientSecret", stack.admin.client[1], True),
        ]
    )
    try:
        other.up()
        # The first stack's destroy removed the chart's ServiceAccount, and with it the operator's
        # token (a bound token dies with its ServiceAccount): as a pod would be, the operator is
        # started again, as the new release's ServiceAccount.
        stack.cluster.stop_operator()
        stack.cluster.start_operator()
        identity = other.outputs_of("MachineIdentity")
        reviewer = stack.secret("infisical-token-reviewer", OPERATOR_NS)
        assert reviewer is not None and reviewer.get("token")
        assert reviewer["token"] not in json.dumps(identity), "the reviewer's JWT in the identity's state"
        found = stack.admin.call("GET", f"/api/v1/identities/{identity['identity_id']}")
        assert found["identity"]["identity"]["authMethod"] == "kubernetes-auth"
        stack.rotate_in_infisical()
        eventually(stack.synced, "the Secret follows Infisical through the managed identity's Kubernetes Auth", 90)
        known = stack.admin.client_secrets()
        holders = [
            (ns, name)
            for ns, name, data in stack.cluster.secrets()
            if known & set(data.values()) or {"clientId", "clientSecret"} & set(data)
        ]
        assert holders == [], f"Secrets holding a client secret: {holders}"
        other.destroy()
        with pytest.raises(InfisicalAdminError) as gone:
            stack.admin.call("GET", f"/api/v1/identities/{identity['identity_id']}")
        assert gone.value.status == 404
        assert stack.secret("infisical-token-reviewer", OPERATOR_NS) is None
    finally:
        other.destroy(remove=True, check=False)
