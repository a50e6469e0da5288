"""A prod stack as a platform team runs it, against the real server and operator: `floe:protect:
true`, the project's own policy pack, `identities: managed` with its scoped role and short-lived
tokens, a rotation and a repair with no unprotect, and a rival stack on the same environment.
Steps run in order on one stack; teardown unprotects (the documented way) and destroys."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, Pulumi, ensure_namespaces, eventually, polling, stop_operator
from harness.cluster import ISSUER, LocalCluster
from harness.localenv import Infisical, InfisicalAdmin

pytestmark = pytest.mark.e2e

STACK = ENV = "prod"
JOBS = "floe-jobs"
OPERATOR_NS = "infisical"
TTL, MAX_TTL = 15, 20  # seconds: they run out several times during the module
POLICY = str(ROOT / "policy")


@dataclass
class Prod:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    admin: InfisicalAdmin
    chart_repo: str
    values: dict[str, str] = field(default_factory=dict)

    def folder(self, name: str) -> str:
        return f"/{self.infisical.prefix}/prod/{name}"

    def manifest(self, site_url: str | None = None, auth: str = "universal") -> str:
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
                            "identity": {"token_ttl": f"{TTL}s", "token_max_ttl": f"{MAX_TTL}s"},
                            "operator": {"chart_repo": self.chart_repo, "auth": auth},
                        },
                    }
                },
                "secrets": {
                    "lake-credentials": {"path": self.folder("lake"), "keys": {"LAKE_TOKEN": {}}},
                    "shared-credentials": {"path": self.folder("shared"), "keys": {"SHARED_KEY": {"config": True}}},
                },
            },
            sort_keys=False,
        )

    def secret(self, name: str = "lake-credentials", namespace: str = JOBS) -> dict[str, str] | None:
        return self.cluster.secret(namespace, name)

    def synced(self) -> bool:
        return self.secret() == {"LAKE_TOKEN": self.values["token"]}

    def change_value(self) -> None:
        self.values["token"] = f"token-{secrets.token_hex(6)}"
        self.infisical.set(ENV, self.folder("lake"), "LAKE_TOKEN", self.values["token"])

    def outputs_of(self, kind: str) -> dict[str, Any]:
        return self.pulumi.outputs_of(kind)

    def client_secrets(self, identity_id: str) -> list[dict[str, Any]]:
        return self.admin.identity_client_secrets(identity_id)


class LoginRefused(Exception):
    pass


def _login(host: str, client_id: str, client_secret: str) -> dict[str, Any]:
    body = json.dumps({"clientId": client_id, "clientSecret": client_secret}).encode()
    request = urllib.request.Request(
        f"{host}/api/v1/auth/universal-auth/login",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return dict(json.loads(answer.read()))
    except urllib.error.HTTPError as exc:
        raise LoginRefused(f"login of {client_id}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None


def _list_status(host: str, token: str, project_id: str, environment: str, path: str) -> int:
    query = urllib.parse.urlencode({"workspaceId": project_id, "environment": environment, "secretPath": path})
    request = urllib.request.Request(f"{host}/api/v3/secrets/raw?{query}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture(scope="module")
def prod(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
    infisical_admin: InfisicalAdmin,
) -> Iterator[Prod]:
    tmp = tmp_path_factory.mktemp("prod")
    pulumi = Pulumi.on_copy(tmp, tools_bin, cluster.kubeconfig, stack=STACK)
    stack = Prod(
        pulumi,
        cluster,
        infisical,
        infisical_admin,
        chart_repo,
        values={"token": f"token-{secrets.token_hex(6)}", "shared": f"shared-{secrets.token_hex(6)}"},
    )
    log = None
    try:
        pulumi.write_manifest(stack.manifest())
        ensure_namespaces(cluster, JOBS, OPERATOR_NS)
        pulumi.init(
            [
                ("floe:createNamespaces", "false", False),
                ("floe:environment", ENV, False),
                ("floe:kubeContext", "floe-local", False),
                ("floe:protect", "true", False),
                ("infisical:clientId", infisical_admin.client[0], False),
                ("infisical:clientSecret", infisical_admin.client[1], True),
                ("floe:secretValues.shared-credentials.SHARED_KEY", stack.values["shared"], True),
            ]
        )
        infisical.set(ENV, stack.folder("lake"), "LAKE_TOKEN", stack.values["token"])
        infisical.set(ENV, "/" + infisical.prefix + "/elsewhere", "OTHER", "not-for-the-operator")
        pulumi.up()
        log = cluster.start_operator()
        yield stack
    finally:
        # A protected stack is destroyed only after `pulumi state unprotect --all` (README).
        pulumi("state", "unprotect", "--all", "--yes", check=False)
        pulumi.destroy(remove=True, check=False)
        stop_operator(cluster, log, "infisical-operator-prod-stack.log")
        for name in ("lake-credentials", "shared-credentials"):
            cluster.kubectl("delete", "secret", name, "-n", JOBS, "--ignore-not-found", "--wait=false")
        infisical.remove_prefix(ENV)


def test_1_a_protected_managed_prod_stack_syncs_and_passes_the_projects_policy_pack(prod: Prod) -> None:
    eventually(prod.synced, "the Secret synced through the identity the prod stack made", 90)
    state = prod.pulumi.resources()
    unprotected = {
        f"{r['type'].rsplit(':', 1)[1]} {r['urn'].rsplit('::', 1)[1]}"
        for r in state
        if not r.get("protect") and not r["type"].startswith(("pulumi:", "floe:"))
    }
    # Only the operator's login material, which the stack makes again (README: protect).
    assert unprotected == {
        "ClientSecret operator",
        "OperatorLogin operator",
        "Secret infisical/infisical-machine-identity",
        "InfisicalAuth infisical/infisical-universal",
    }, unprotected
    result = prod.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])
    assert "mandatory" not in result.stdout, result.stdout[-3000:]


def test_2_the_operator_identity_reads_only_its_environment_and_the_manifests_folders(prod: Prod) -> None:
    identity = prod.outputs_of("MachineIdentity")
    role = prod.outputs_of("ProjectRole")
    membership = prod.admin.call(
        "GET", f"/api/v2/workspace/{prod.admin.project_id}/identity-memberships/{identity['identity_id']}"
    )
    assert [r["customRoleSlug"] or r["role"] for r in membership["identityMembership"]["roles"]] == [role["role_slug"]]
    client_secret = prod.outputs_of("ClientSecret")["client_secret"]
    login = _login(prod.infisical.host, identity["client_id"], client_secret)
    assert (login["expiresIn"], login["accessTokenMaxTTL"]) == (TTL, MAX_TTL)
    token, project = login["accessToken"], prod.admin.project_id
    assert _list_status(prod.infisical.host, token, project, ENV, prod.folder("lake")) == 200
    assert _list_status(prod.infisical.host, token, project, "dev", prod.folder("lake")) == 403
    assert _list_status(prod.infisical.host, token, project, ENV, f"/{prod.infisical.prefix}/elsewhere") == 403


def test_3_sync_goes_on_past_the_access_tokens_ttl_and_max_ttl(prod: Prod) -> None:
    identity_id = prod.outputs_of("MachineIdentity")["identity_id"]
    (current,) = prod.client_secrets(identity_id)
    before = int(current["clientSecretNumUses"])
    time.sleep(2 * MAX_TTL + 5)
    prod.change_value()
    eventually(prod.synced, f"the Secret follows Infisical {2 * MAX_TTL}s after the login (max TTL {MAX_TTL}s)")
    (current,) = prod.client_secrets(identity_id)
    # v1beta1 keeps a login for 70% of its TTL, then logs in again with the client secret.
    assert int(current["clientSecretNumUses"]) - before >= 3, current


def _held_and_ready(prod: Prod) -> tuple[str | None, str | None]:
    """What the Secret holds, and whether the operator's InfisicalAuth is ready."""
    held = prod.secret()
    auth = prod.cluster.kubectl(
        "get",
        "infisicalauth",
        "infisical-universal",
        "-n",
        OPERATOR_NS,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='secrets.infisical.com/IsReady')].status}",
    )
    return (held or {}).get("LAKE_TOKEN"), auth or None


def test_4_a_rotation_in_the_protected_stack_needs_no_unprotect_and_leaves_no_gap(prod: Prod) -> None:
    identity_id = prod.outputs_of("MachineIdentity")["identity_id"]
    (old,) = prod.client_secrets(identity_id)
    before = prod.secret("infisical-machine-identity", OPERATOR_NS)
    previous = prod.values["token"]
    prod.pulumi.config_set("floe:operatorSecretRotation", "r1")
    with polling(lambda: _held_and_ready(prod)) as seen:
        prod.change_value()  # as the up starts: it must arrive, or the operator stopped syncing
        prod.pulumi.up()
    assert len(seen) > 10 and all(ready == "True" for _, ready in seen), f"the InfisicalAuth was not ready: {seen}"
    assert all(token in (previous, prod.values["token"]) for token, _ in seen), f"the Secret was missing: {seen}"
    assert any(token == prod.values["token"] for token, _ in seen), "the value changed in Infisical never arrived"
    (new,) = [s for s in prod.client_secrets(identity_id) if not s.get("isClientSecretRevoked")]
    assert new["id"] != old["id"] and int(new["clientSecretNumUses"]) >= 1
    after = prod.secret("infisical-machine-identity", OPERATOR_NS)
    assert after is not None and before is not None
    # The same Secret (updated, not replaced: protect would refuse that), the new client secret in it.
    assert after["clientId"] == before["clientId"] and after["clientSecret"] != before["clientSecret"]
    prod.change_value()
    eventually(prod.synced, "the Secret follows Infisical with the new client secret")
    prod.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])


def test_5_a_client_secret_revoked_by_hand_is_seen_by_refresh_and_repaired_by_up(prod: Prod) -> None:
    """Also measures what revocation ends: a token issued before it keeps working (until its TTL),
    the client secret logs in no more."""
    identity = prod.outputs_of("MachineIdentity")
    identity_id = identity["identity_id"]
    held = prod.outputs_of("ClientSecret")
    current = held["secret_id"]
    token = _login(prod.infisical.host, identity["client_id"], held["client_secret"])["accessToken"]
    prod.admin.call("POST", f"/api/v1/auth/universal-auth/identities/{identity_id}/client-secrets/{current}/revoke", {})
    assert _list_status(prod.infisical.host, token, prod.admin.project_id, ENV, prod.folder("lake")) == 200, (
        "a token of the revoked client secret no longer works (the README says it does, until its TTL)"
    )
    with pytest.raises(LoginRefused):
        _login(prod.infisical.host, identity["client_id"], held["client_secret"])
    prod.pulumi.refresh()
    changed = prod.pulumi.preview(expect_no_changes=True, check=False)
    assert changed.returncode != 0 and "ClientSecret" in changed.stdout, changed.stdout[-3000:]
    # Only it: what refresh read back of the role and the identity is what the stack made.
    assert "ProjectRole" not in changed.stdout and "MachineIdentity" not in changed.stdout, changed.stdout[-3000:]
    prod.pulumi.up()
    repaired = prod.outputs_of("ClientSecret")
    assert repaired["secret_id"] != current and repaired["valid"] is True
    prod.change_value()
    eventually(prod.synced, "the Secret follows Infisical with the repaired client secret", 90)
    prod.pulumi.preview(expect_no_changes=True)


def test_6_a_rival_stack_with_the_same_key_and_value_is_refused_and_its_destroy_leaves_the_key(
    prod: Prod,
    tools_bin: Path,
    tmp_path: Path,
) -> None:
    folder = prod.folder("shared")
    assert prod.infisical.get(ENV, folder, "SHARED_KEY") == prod.values["shared"]
    rival = Pulumi.on_copy(tmp_path, tools_bin, prod.cluster.kubeconfig, prod.manifest(), stack="prod-us")
    rival.init(
        [
            ("floe:environment", ENV, False),
            ("floe:kubeContext", "floe-local", False),
            ("infisical:clientId", prod.infisical.writer[0], False),
            ("infisical:clientSecret", prod.infisical.writer[1], True),
            ("floe:secretValues.shared-credentials.SHARED_KEY", prod.values["shared"], True),
        ]
    )
    platform = "urn:pulumi:prod-us::floe::floe:secrets:Platform"
    urn = f"{platform}$pulumi-python:dynamic/infisical:SecretValue::{folder}:SHARED_KEY"
    try:
        # Only the value: the prod stack's operator, release and namespaces are in the way of the rest.
        refused = rival(
            "up", "--yes", "--skip-preview", "--target", f"{platform}::floe-secrets", "--target", urn, check=False
        )
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert (
            f"Infisical already has key SHARED_KEY in project {prod.infisical.project_slug}, environment prod, "
            f"path {folder}, not written by this stack (stack organization/floe/prod): "
            "set adopt: true"
        ) in output, output[-3000:]
        assert prod.values["shared"] not in output and "Traceback" not in output
        rival.destroy()
    finally:
        rival.destroy(remove=True, check=False)
    assert prod.infisical.get(ENV, folder, "SHARED_KEY") == prod.values["shared"]
    prod.pulumi.preview(expect_no_changes=True)


def test_7_a_new_url_for_the_infisical_host_reaches_every_infisical_resource_in_place(prod: Prod) -> None:
    """The same server under another name (127.0.0.1 → localhost): an update of the identity, its
    role, its client secret and the values, never a replace (refused in a protected stack)."""
    moved = prod.infisical.host.replace("127.0.0.1", "localhost")
    prod.pulumi.write_manifest(prod.manifest(moved))
    preview = prod.pulumi.preview_json()
    ops = {
        s["urn"].rsplit("::", 1)[1] + " " + s["urn"].split("::")[2].rsplit("$", 1)[-1]: s["op"]
        for s in preview["steps"]
        if "dynamic/infisical" in s["urn"]
    }
    assert ops and set(ops.values()) <= {"update", "same"}, ops
    assert ops["operator pulumi-python:dynamic/infisical:MachineIdentity"] == "update"
    prod.pulumi.up()
    prod.change_value()
    eventually(prod.synced, "the Secret follows Infisical at the new host name")
    prod.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])


def _switch_watching(prod: Prod, manifest: str) -> float:
    """Writes ``manifest`` and runs `pulumi up`, a value changed in Infisical as it starts, with the
    Secret polled every 0.2 s: it holds the old or the new value at every poll. Returns the seconds
    from the `up`'s end until the new value arrived (sync pauses while the identity changes method)."""
    previous = prod.values["token"]
    prod.pulumi.write_manifest(manifest)
    with polling(lambda: (prod.secret() or {}).get("LAKE_TOKEN")) as seen:
        prod.change_value()
        prod.pulumi.up()
    assert len(seen) > 10 and all(v in (previous, prod.values["token"]) for v in seen), f"missing: {seen}"
    _, late = eventually(prod.synced, "the value changed as the `up` started arrives through the new method", 120)
    return late


def test_8_the_identity_moves_to_kubernetes_auth_and_back_in_one_up_each_with_no_unprotect(prod: Prod) -> None:
    """The same identity (Infisical keeps one auth method per identity); each `up` deletes the old
    method's login material, which is never protected, and nothing else; Kubernetes Auth has the
    cluster's issuer as its audience and the short TTLs, and sync goes on past them; the policy pack
    passes and nothing changes after either `up`."""
    host = prod.infisical.host.replace("127.0.0.1", "localhost")  # where step 7 left it
    identity_id = prod.outputs_of("MachineIdentity")["identity_id"]
    late = _switch_watching(prod, prod.manifest(host, auth="kubernetes"))
    print(f"to Kubernetes Auth: the value changed as the `up` started arrived {late:.1f}s after it")
    assert prod.outputs_of("MachineIdentity")["identity_id"] == identity_id
    auth = prod.admin.call("GET", f"/api/v1/auth/kubernetes-auth/identities/{identity_id}")["identityKubernetesAuth"]
    assert (auth["allowedAudience"], auth["accessTokenTTL"], auth["accessTokenMaxTTL"]) == (ISSUER, TTL, MAX_TTL)
    assert prod.secret("infisical-machine-identity", OPERATOR_NS) is None, "the client secret's Secret is left"
    state = prod.pulumi.resources()
    types = {r["type"].rsplit(":", 1)[1] for r in state}
    assert not types & {"ClientSecret", "OperatorLogin"} and "MachineIdentity" in types
    prod.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])
    time.sleep(2 * MAX_TTL + 5)
    prod.change_value()
    eventually(prod.synced, f"the Secret follows Infisical through Kubernetes Auth {2 * MAX_TTL}s on", 90)

    late = _switch_watching(prod, prod.manifest(host))
    print(f"to Universal Auth: the value changed as the `up` started arrived {late:.1f}s after it")
    found = prod.admin.call("GET", f"/api/v1/identities/{identity_id}")
    assert found["identity"]["identity"]["authMethod"] == "universal-auth"
    reviewer = prod.cluster.kubectl(
        "get", "serviceaccount", "infisical-token-reviewer", "-n", OPERATOR_NS, "--ignore-not-found", "-o", "name"
    )
    assert reviewer.strip() == "", "the token reviewer (bound to system:auth-delegator) is left"
    prod.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])
