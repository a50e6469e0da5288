"""The managed-identity providers' own logic, over a recording stand-in for the connection: what is
undone when a create fails half-way, which twins a lost answer leaves are removed, and the end of
a rotation's wait. Their requests and Infisical's answers are checked on the real server
(tests/e2e/test_managed_identities.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from floe_infra.clients.errors import InfisicalError, PermissionDenied
from floe_infra.deploy.identities import (
    ClientSecretProvider,
    MachineIdentityProvider,
    OperatorLoginProvider,
    ProjectRoleProvider,
)


@dataclass
class Answer:
    data: Any


@dataclass
class FakeConnection:
    """Answers by (method, path prefix); records every request; ``lost`` makes the first call of a
    kind report a lost answer to its ``on_retry``, as a retried attempt that may have landed."""

    answers: dict[tuple[str, str], Any]
    refuse: dict[tuple[str, str], Exception] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    client_id: str = "admin-client-id"
    host: str = "https://infisical.example.com"

    def project(self, slug: str) -> dict[str, str]:
        return {"id": "project-1", "orgId": "org-1"}

    def _answer(self, method: str, path: str, json: Any = None) -> Answer:
        self.requests.append((method, path, json))
        for (m, prefix), exc in self.refuse.items():
            if m == method and path.startswith(prefix):
                raise exc
        for (m, prefix), answer in self.answers.items():
            if m == method and path.startswith(prefix):
                return Answer(answer(json) if callable(answer) else answer)
        raise AssertionError(f"unexpected {method} {path}")

    def call(
        self, what: str, fn: Callable[[Any], Any], on_retry: Callable[[bool], None] | None = None, **_: Any
    ) -> Any:
        api = self

        class Api:
            def post(self, path: str, model: Any, json: Any = None) -> Answer:
                return api._answer("POST", path, json)

            def get(self, path: str, model: Any, params: Any = None) -> Answer:
                return api._answer("GET", path)

            def delete(self, path: str, model: Any, json: Any = None) -> Answer:
                return api._answer("DELETE", path, json)

            def patch(self, path: str, model: Any, json: Any = None) -> Answer:
                return api._answer("PATCH", path, json)

        class Client:
            pass

        client = Client()
        client.api = Api()  # type: ignore[attr-defined]
        if on_retry is not None and what.split()[0] in self.lost:
            on_retry(True)
        return fn(client)


def use(provider: Any, conn: FakeConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provider, "_connection", lambda: conn)


def _as_engine_sends(value: Any) -> Any:
    struct = struct_pb2.Struct()
    struct.update({"v": value})
    return rpc.deserialize_properties(struct, True)["v"]


# An unknown as the engine may send it in a preview: an output value without a value.
UNKNOWN_OUTPUT = _as_engine_sends({rpc._special_sig_key: rpc._special_output_value_sig})

ACCESS = {"ttl": 600, "max_ttl": 3600, "trusted_ips": []}
PROPS = {"name": "floe-p-dev-operator", "project_slug": "p", "role": "viewer", "kubernetes": None, "access": ACCESS}


def test_an_identity_whose_membership_is_refused_is_deleted_and_the_error_names_the_permission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection(
        answers={
            ("POST", "/api/v1/identities"): {"identity": {"id": "id-1"}},
            ("DELETE", "/api/v1/identities/"): {},
            ("GET", "/api/v1/identities"): {"identities": []},
        },
        refuse={
            ("POST", "/api/v2/workspace/"): PermissionDenied(
                403, "PermissionDenied", "You are not allowed to create on identity"
            )
        },
    )
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    with pytest.raises(
        InfisicalError,
        match=r"machine identity admin-client-id \(the one Pulumi uses, "
        r"infisical:clientId\) may not add machine identity floe-p-dev-operator "
        r"to project p as viewer .*You are not allowed to create on identity.*"
        r"a project role that may add members",
    ):
        provider.create(dict(PROPS))
    assert ("DELETE", "/api/v1/identities/id-1", {}) in conn.requests


def test_a_lost_answer_leaves_no_twin_and_no_identity_that_existed_before_is_touched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: dict[str, str] = {}

    def created(body: Any) -> Any:
        made["name"] = body["name"]
        return {"identity": {"id": "kept"}}

    def listed(_: Any) -> Any:
        return {
            "identities": [
                {"identity": {"id": "kept", "name": made["name"]}},
                {"identity": {"id": "twin", "name": made["name"]}},
                {"identity": {"id": "theirs", "name": "floe-p-dev-operator"}},
            ]
        }

    conn = FakeConnection(
        answers={
            ("POST", "/api/v1/identities"): created,
            ("GET", "/api/v1/identities"): listed,
            ("DELETE", "/api/v1/identities/"): {},
            ("POST", "/api/v2/workspace/"): {},
            ("POST", "/api/v1/auth/universal-auth/identities/"): {"identityUniversalAuth": {"clientId": "cid"}},
        },
        lost={"create"},
    )
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    result = provider.create(dict(PROPS))
    assert result.id == "kept" and made["name"].startswith("floe-p-dev-operator-")
    deleted = [path for method, path, _ in conn.requests if method == "DELETE"]
    assert deleted == ["/api/v1/identities/twin"]


def test_identities_a_killed_up_may_have_left_are_named_never_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr("floe_infra.deploy.identities.pulumi.log.warn", warned.append)
    listed = {
        "identities": [
            {"identity": {"id": "left", "name": "floe-p-dev-operator-a1b2c3"}},
            {"identity": {"id": "new", "name": "floe-p-dev-operator-d4e5f6"}},
            {"identity": {"id": "other", "name": "floe-p-dev-operator-extra-a1b2c3"}},
        ]
    }
    conn = FakeConnection(
        answers={
            ("POST", "/api/v1/identities"): {"identity": {"id": "new"}},
            ("GET", "/api/v1/identities"): listed,
            ("POST", "/api/v2/workspace/"): {},
            ("POST", "/api/v1/auth/universal-auth/identities/"): {"identityUniversalAuth": {"clientId": "cid"}},
        }
    )
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    provider.create(dict(PROPS))
    assert [m for m, _, _ in conn.requests if m == "DELETE"] == []
    assert len(warned) == 1 and "(left)" in warned[0] and "delete them in Infisical" in warned[0]


def test_a_lost_answer_to_a_client_secret_revokes_only_its_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    nonce: dict[str, str] = {}

    def created(body: Any) -> Any:
        nonce["description"] = body["description"]
        return {"clientSecret": "s3cr3t", "clientSecretData": {"id": "new"}}

    def listed(_: Any) -> Any:
        return {
            "clientSecretData": [
                {"id": "new", "description": nonce["description"]},
                {"id": "twin", "description": nonce["description"]},
                {"id": "older", "description": "floe-infra rotation 0 abcd"},
            ]
        }

    base = "/api/v1/auth/universal-auth/identities/id-1/client-secrets"
    conn = FakeConnection(
        answers={("POST", f"{base}/twin/revoke"): {}, ("POST", base): created, ("GET", base): listed}, lost={"create"}
    )
    provider = ClientSecretProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    result = provider.create({"identity_id": "id-1", "rotation": "r1"})
    assert result.id == "new" and (result.outs or {})["client_secret"] == "s3cr3t"
    revoked = [path for method, path, _ in conn.requests if path.endswith("/revoke")]
    assert revoked == [f"{base}/twin/revoke"]


BASE = "/api/v1/auth/universal-auth/identities/id-1/client-secrets"


@pytest.mark.parametrize(("uses", "ends"), [(1, "returns"), (0, "fails")])
def test_a_rotation_waits_for_a_login_with_the_new_client_secret_then_revokes_the_others(
    monkeypatch: pytest.MonkeyPatch, uses: int, ends: str
) -> None:
    listed = {"clientSecretData": [{"id": "new"}, {"id": "old"}, {"id": "gone", "isClientSecretRevoked": True}]}
    conn = FakeConnection(
        answers={
            ("GET", f"{BASE}/new"): {"clientSecretData": {"clientSecretNumUses": uses}},
            ("GET", BASE): listed,
            ("POST", f"{BASE}/old/revoke"): {},
        }
    )
    provider = OperatorLoginProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    monkeypatch.setattr("floe_infra.deploy.identities.time.sleep", lambda _: None)
    news = {"identity_id": "id-1", "client_secret_id": "new", "wait": 0.01}
    if ends == "returns":
        assert provider.update("login-id-1", {"client_secret_id": "old"}, news).outs == news
        assert [p for m, p, _ in conn.requests if p.endswith("/revoke")] == [f"{BASE}/old/revoke"]
    else:
        with pytest.raises(
            InfisicalError,
            match=r"the operator has not logged in with the new client secret of "
            r"machine identity id-1 within 0s, so the old one is not revoked",
        ):
            provider.update("login-id-1", {"client_secret_id": "old"}, news)
        assert [p for m, p, _ in conn.requests if p.endswith("/revoke")] == []
    asked = len(conn.requests)
    provider.create(news)  # a new stack's operator may not run yet: creating waits for nothing
    assert len(conn.requests) == asked


def _client_secret(conn: FakeConnection, monkeypatch: pytest.MonkeyPatch) -> ClientSecretProvider:
    provider = ClientSecretProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    return provider


@pytest.mark.parametrize(
    ("olds", "news", "changes"),
    [
        ({"rotation": "", "secret_id": "s1", "valid": True}, {"rotation": "r1"}, True),
        ({"rotation": "r1", "secret_id": "s1", "valid": True}, {"rotation": "r1"}, False),
        ({"rotation": "r1", "secret_id": "s1", "valid": False}, {"rotation": "r1"}, True),  # revoked by hand
        ({"rotation": "r1"}, {"rotation": "r1"}, True),  # a state of the previous release: no secret_id yet
        # a preview of an update of the identity, whose id it keeps: not known yet, no replace
        ({"rotation": "r1", "secret_id": "s1", "valid": True}, {"rotation": "r1", "identity_id": rpc.UNKNOWN}, True),
        ({"rotation": "r1", "secret_id": "s1", "valid": True}, {"rotation": "r1", "identity_id": UNKNOWN_OUTPUT}, True),
    ],
    ids=[
        "rotation",
        "same",
        "revoked-by-hand",
        "earlier-release",
        "identity-not-known-in-preview",
        "identity-an-unknown-output-value",
    ],
)
def test_a_client_secret_changes_in_place_never_by_replace(
    olds: dict[str, Any], news: dict[str, Any], changes: bool
) -> None:
    """A protected stack may update a resource, not replace it: a rotation, a repair and an upgrade
    are all updates."""
    diff = ClientSecretProvider("x").diff("s0", {"identity_id": "id-1", **olds}, {"identity_id": "id-1", **news})
    assert (diff.changes, diff.replaces) == (changes, [])


def test_a_rotation_makes_a_new_client_secret_and_keeps_the_old_for_the_login_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection(answers={("POST", BASE): {"clientSecret": "n3w", "clientSecretData": {"id": "s2"}}})
    provider = _client_secret(conn, monkeypatch)
    olds = {"identity_id": "id-1", "rotation": "", "secret_id": "s1", "client_secret": "0ld", "valid": True}
    outs = provider.update("s1", olds, {"identity_id": "id-1", "rotation": "r1", "client_secret": None}).outs
    assert outs is not None and (outs["secret_id"], outs["client_secret"], outs["rotation"]) == ("s2", "n3w", "r1")
    assert [p for m, p, _ in conn.requests if p.endswith("/revoke")] == []


@pytest.mark.parametrize(
    ("answer", "valid"),
    [({"isClientSecretRevoked": True}, False), ({"isClientSecretRevoked": False}, True), (None, False)],
    ids=["revoked", "valid", "gone"],
)
def test_refresh_notices_a_client_secret_revoked_outside_pulumi(
    monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any] | None, valid: bool
) -> None:
    from floe_infra.clients.errors import NotFound

    conn = FakeConnection(
        answers={("GET", f"{BASE}/s1"): {"clientSecretData": answer}} if answer else {},
        refuse={} if answer else {("GET", f"{BASE}/s1"): NotFound(404, "NotFound", "gone")},
    )
    read = _client_secret(conn, monkeypatch).read("s1", {"identity_id": "id-1", "secret_id": "s1"})
    assert (read.outs or {})["valid"] is valid


K8S = {
    "namespace": "infisical",
    "service_account": "infisical-auth",
    "reviewer_secret": "r",
    "kube_context": None,
    "host": "https://10.0.0.1:6443",
    "audience": None,
}


READ = ("GET", "/api/v1/identities/id-1")


@pytest.mark.parametrize(
    ("olds", "news", "held", "expected"),
    [
        (
            {"kubernetes": None},
            {"kubernetes": K8S},
            "universal-auth",
            [
                READ,
                ("DELETE", "/api/v1/auth/universal-auth/identities/id-1"),
                ("POST", "/api/v1/auth/kubernetes-auth/identities/id-1"),
            ],
        ),
        (
            {"kubernetes": K8S},
            {"kubernetes": None},
            "kubernetes-auth",
            [
                READ,
                ("DELETE", "/api/v1/auth/kubernetes-auth/identities/id-1"),
                ("POST", "/api/v1/auth/universal-auth/identities/id-1"),
            ],
        ),
        # an earlier switch removed the old method and failed before the new: only the attach is left
        (
            {"kubernetes": None},
            {"kubernetes": K8S},
            "",
            [READ, ("POST", "/api/v1/auth/kubernetes-auth/identities/id-1")],
        ),
        (
            {"kubernetes": None},
            {"kubernetes": None, "access": {**ACCESS, "ttl": 60}},
            "universal-auth",
            [READ, ("PATCH", "/api/v1/auth/universal-auth/identities/id-1")],
        ),
        (
            {"role": "viewer"},
            {"role": "floe-dev-reader-abc123"},
            "universal-auth",
            [READ, ("PATCH", "/api/v2/workspace/project-1/identity-memberships/id-1")],
        ),
    ],
    ids=[
        "universal-to-kubernetes",
        "kubernetes-to-universal",
        "half-done-switch",
        "token-ttl",
        "viewer-to-scoped-role",
    ],
)
def test_an_identity_changes_method_ttls_and_role_in_place(
    monkeypatch: pytest.MonkeyPatch,
    olds: dict[str, Any],
    news: dict[str, Any],
    held: str,
    expected: list[tuple[str, str]],
) -> None:
    """A switch of method removes the old (Infisical keeps one per identity: PATCHing the other
    answers 400 "Failed to update Kubernetes Auth") and attaches the new; TTLs are sent together."""
    settings = {
        "kubernetesHost": "h",
        "caCert": "c",
        "tokenReviewerJwt": "j",
        "allowedNamespaces": "infisical",
        "allowedNames": "infisical-auth",
        "allowedAudience": "https://kubernetes.default.svc",
    }
    monkeypatch.setattr("floe_infra.deploy.identities.kubernetes_auth_settings", lambda login, access: settings)
    monkeypatch.setattr("floe_infra.deploy.identities.cluster_fingerprint", lambda login: "fp" if login else None)
    conn = FakeConnection(
        answers={
            READ: {"identity": {"identity": {"id": "id-1", "authMethod": held or None}}},
            ("DELETE", "/api/v1/auth/"): {},
            ("POST", "/api/v1/auth/kubernetes-auth/"): {},
            ("POST", "/api/v1/auth/universal-auth/"): {"identityUniversalAuth": {"clientId": "cid-2"}},
            ("PATCH", "/api/v1/auth/"): {},
            ("PATCH", "/api/v2/workspace/"): {},
        }
    )
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    base = {**PROPS, "project_id": "project-1", "identity_id": "id-1", "client_id": "cid-1"}
    # As the engine sends them: the SDK drops a None input (universal auth has no "kubernetes").
    news = {k: v for k, v in {**PROPS, **news}.items() if v is not None}
    assert provider.diff("id-1", {**base, **olds}, news).changes
    outs = provider.update("id-1", {**base, **olds}, news).outs or {}
    assert [(m, p) for m, p, _ in conn.requests] == expected
    body = conn.requests[-1][2]
    assert outs["auth_method"] == ("kubernetes-auth" if news.get("kubernetes") else "universal-auth")
    if expected[-1][1].startswith("/api/v1/auth/universal-auth"):
        ttl = (news.get("access") or ACCESS)["ttl"]
        assert (body["accessTokenTTL"], body["accessTokenMaxTTL"]) == (ttl, 3600)
        assert (
            body["clientSecretTrustedIps"]
            == body["accessTokenTrustedIps"]
            == [{"ipAddress": "0.0.0.0/0"}, {"ipAddress": "::/0"}]
        )
    if news.get("kubernetes") and not olds.get("kubernetes"):
        assert outs["client_id"] == "" and outs["cluster_fingerprint"] == "fp"
    if olds.get("kubernetes") and not news.get("kubernetes"):
        assert outs["client_id"] == "cid-2"
        assert "kubernetes" not in outs  # or every later diff would see Kubernetes Auth wanted gone


@pytest.mark.parametrize(
    ("change", "diff"),
    [({}, False), ({"ca.crt": "CA-2"}, True), ({"token": "jwt-2"}, True), ({"server": "https://10.0.0.2:6443"}, True)],
    ids=["same", "new-ca", "new-reviewer-token", "new-address"],
)
def test_a_new_cluster_ca_reviewer_token_or_address_is_a_diff(
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str],
    diff: bool,
) -> None:
    """What the identity's Kubernetes Auth reads from the cluster is digested by check (on every
    preview); a change of it is an update, and no digest holds the JWT."""
    from types import SimpleNamespace

    cluster: dict[str, str] = {"server": "https://10.0.0.1:6443", "ca.crt": "CA-1", "token": "jwt-1"}

    def read(login: dict[str, Any], wait: float) -> Any:
        return SimpleNamespace(server=cluster["server"]), {"ca.crt": cluster["ca.crt"], "token": cluster["token"]}

    monkeypatch.setattr("floe_infra.deploy.identities._reviewer", read)
    provider = MachineIdentityProvider("https://infisical.example.com")
    login = {**K8S, "host": None}
    olds = dict(provider.check({}, {**PROPS, "kubernetes": login, "site_url": "h"}).inputs or {})
    cluster.update(change)
    news = dict(provider.check(olds, {**PROPS, "kubernetes": login, "site_url": "h"}).inputs or {})
    result = provider.diff("id-1", olds, news)
    assert (result.changes, result.replaces) == (diff, [])
    assert "jwt-1" not in str(olds) and "jwt-2" not in str(news)


def test_a_switch_that_failed_half_way_and_was_reverted_is_still_a_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old method removed, the new one refused, the manifest put back: Infisical holds no
    method, and refresh says so (auth_method), so the next `up` attaches the wanted one."""
    conn = FakeConnection(answers={READ: {"identity": {"identity": {"id": "id-1", "authMethod": None}}}})
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    state = {**PROPS, "identity_id": "id-1", "auth_method": "universal-auth"}
    refreshed = dict(provider.read("id-1", state).outs or {})
    assert refreshed["auth_method"] == ""
    assert provider.diff("id-1", refreshed, dict(PROPS)).changes
    assert not provider.diff("id-1", state, dict(PROPS)).changes


@pytest.mark.parametrize(
    ("held", "drift"),
    [
        (
            [
                {
                    "subject": "secrets",
                    "action": "read",
                    "inverted": False,
                    "conditions": {"environment": "prod", "secretPath": {"$in": ["/a"]}},
                }
            ],
            False,
        ),
        (
            [
                {
                    "subject": "secrets",
                    "action": ["read", "create"],
                    "conditions": {"environment": "prod", "secretPath": {"$in": ["/a"]}},
                }
            ],
            True,
        ),
        ([{"subject": "secrets", "action": ["read"], "conditions": {"environment": "prod"}}], True),
    ],
    ids=["same-spelled-otherwise", "widened-by-hand", "paths-dropped-by-hand"],
)
def test_refresh_sees_a_role_edited_by_hand(monkeypatch: pytest.MonkeyPatch, held: list[Any], drift: bool) -> None:
    conn = FakeConnection(
        answers={("GET", "/api/v1/workspace/p/roles/slug/"): {"role": {"id": "r", "permissions": held}}}
    )
    provider = ProjectRoleProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    props = {
        "project_slug": "p",
        "slug": "floe-prod-reader",
        "environment": "prod",
        "paths": ["/a"],
        "role_slug": "floe-prod-reader-abc123",
        "role_id": "r",
    }
    read = dict(provider.read("r", props).outs or {})
    assert (
        provider.diff("r", read, {k: props[k] for k in ("project_slug", "slug", "environment", "paths")}).changes
        is drift
    )


def create_role(monkeypatch: pytest.MonkeyPatch, props: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A ProjectRole created against a fake server: the result, and the body the server got."""
    made: dict[str, Any] = {}

    def created(body: Any) -> Any:
        made.update(body)
        return {"role": {"id": "role-1", "slug": body["slug"]}}

    conn = FakeConnection(answers={("POST", "/api/v1/workspace/p/roles"): created})
    provider = ProjectRoleProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    return provider.create(props), made


def test_a_scoped_role_reads_one_environment_and_the_manifests_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    props = {"project_slug": "p", "slug": "floe-prod-reader", "environment": "prod", "paths": ["/a", "/b/c"]}
    result, made = create_role(monkeypatch, props)
    provider = ProjectRoleProvider("https://infisical.example.com")
    assert result.id == "role-1" and made["slug"].startswith("floe-prod-reader-")
    assert (result.outs or {})["role_slug"] == made["slug"]
    assert made["permissions"] == [
        {
            "subject": "secrets",
            "action": ["read"],
            "conditions": {"environment": "prod", "secretPath": {"$in": ["/a", "/b/c"]}},
        }
    ]
    diff = provider.diff("role-1", {**props, **(result.outs or {})}, {**props, "paths": ["/a"]})
    assert (diff.changes, diff.replaces) == (True, [])


@pytest.mark.parametrize("folders", [2, 10, 1000])
def test_a_role_for_many_folders_has_a_description_infisical_can_store(
    monkeypatch: pytest.MonkeyPatch, folders: int
) -> None:
    """Infisical keeps at most 255 characters of a role's description: a longer one failed the
    create with a 500 (a varchar(255) column), found by the e2e with ten folders."""
    paths = [f"/e2e-1a2b3c4d/scale/folder-{i}" for i in range(folders)]
    _, made = create_role(
        monkeypatch, {"project_slug": "p", "slug": "floe-dev-reader", "environment": "dev", "paths": paths}
    )
    assert len(made["description"]) <= 255
    assert made["description"].startswith("floe-infra: the operator of stack floe-dev-reader reads dev, ")
    assert made["permissions"][0]["conditions"]["secretPath"] == {"$in": paths}  # every folder, still
