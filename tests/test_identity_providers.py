"""The managed-identity providers' own logic, over a recording stand-in for the connection: what is
undone when a create fails half-way, which twins a lost answer leaves are removed, and the end of
a rotation's wait. Their requests and Infisical's answers are checked on the real server
(tests/e2e/test_managed_identities.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from floe_infra.clients.infisical import InfisicalError, PermissionDenied
from floe_infra.deploy.identities import ClientSecretProvider, MachineIdentityProvider, OperatorLoginProvider


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


PROPS = {"name": "floe-p-dev-operator", "project_slug": "p", "role": "viewer", "kubernetes": None}


def test_an_identity_whose_membership_is_refused_is_deleted_and_the_error_names_the_permission(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = FakeConnection(
        answers={("POST", "/api/v1/identities"): {"identity": {"id": "id-1"}}, ("DELETE", "/api/v1/identities/"): {}},
        refuse={("POST", "/api/v2/workspace/"): PermissionDenied(403, "PermissionDenied",
                                                                  "You are not allowed to create on identity")},
    )
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    with pytest.raises(InfisicalError, match=r"machine identity admin-client-id \(the one Pulumi uses, "
                                             r"infisical:clientId\) may not add machine identity floe-p-dev-operator "
                                             r"to project p as viewer .*You are not allowed to create on identity.*"
                                             r"a project role that may add members"):
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
        return {"identities": [{"identity": {"id": "kept", "name": made["name"]}},
                               {"identity": {"id": "twin", "name": made["name"]}},
                               {"identity": {"id": "theirs", "name": "floe-p-dev-operator"}}]}

    conn = FakeConnection(answers={
        ("POST", "/api/v1/identities"): created, ("GET", "/api/v1/identities"): listed,
        ("DELETE", "/api/v1/identities/"): {}, ("POST", "/api/v2/workspace/"): {},
        ("POST", "/api/v1/auth/universal-auth/identities/"): {"identityUniversalAuth": {"clientId": "cid"}},
    }, lost={"create"})
    provider = MachineIdentityProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    result = provider.create(dict(PROPS))
    assert result.id == "kept" and made["name"].startswith("floe-p-dev-operator-")
    deleted = [path for method, path, _ in conn.requests if method == "DELETE"]
    assert deleted == ["/api/v1/identities/twin"]


def test_a_lost_answer_to_a_client_secret_revokes_only_its_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    nonce: dict[str, str] = {}

    def created(body: Any) -> Any:
        nonce["description"] = body["description"]
        return {"clientSecret": "s3cr3t", "clientSecretData": {"id": "new"}}

    def listed(_: Any) -> Any:
        return {"clientSecretData": [{"id": "new", "description": nonce["description"]},
                                     {"id": "twin", "description": nonce["description"]},
                                     {"id": "older", "description": "floe-infra rotation 0 abcd"}]}

    base = "/api/v1/auth/universal-auth/identities/id-1/client-secrets"
    conn = FakeConnection(answers={("POST", f"{base}/twin/revoke"): {}, ("POST", base): created,
                                   ("GET", base): listed}, lost={"create"})
    provider = ClientSecretProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    result = provider.create({"identity_id": "id-1", "rotation": "r1"})
    assert result.id == "new" and (result.outs or {})["client_secret"] == "s3cr3t"
    revoked = [path for method, path, _ in conn.requests if path.endswith("/revoke")]
    assert revoked == [f"{base}/twin/revoke"]


@pytest.mark.parametrize(("uses", "ends"), [(1, "returns"), (0, "fails")])
def test_a_rotation_waits_for_a_login_with_the_new_client_secret(
    monkeypatch: pytest.MonkeyPatch, uses: int, ends: str
) -> None:
    conn = FakeConnection(answers={("GET", "/api/v1/auth/universal-auth/identities/id-1/client-secrets/new"):
                                   {"clientSecretData": {"clientSecretNumUses": uses}}})
    provider = OperatorLoginProvider("https://infisical.example.com")
    use(provider, conn, monkeypatch)
    monkeypatch.setattr("floe_infra.deploy.identities.time.sleep", lambda _: None)
    news = {"identity_id": "id-1", "client_secret_id": "new", "wait": 0.01}
    if ends == "returns":
        assert provider.update("login-id-1", {"client_secret_id": "old"}, news).outs == news
    else:
        with pytest.raises(InfisicalError, match=r"the operator has not logged in with the new client secret of "
                                                 r"machine identity id-1 within 0s, so the old one is not revoked"):
            provider.update("login-id-1", {"client_secret_id": "old"}, news)
    asked = len(conn.requests)
    provider.create(news)  # a new stack's operator may not run yet: creating waits for nothing
    assert len(conn.requests) == asked
