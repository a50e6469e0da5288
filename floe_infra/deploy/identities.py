"""Machine identities this stack manages (``identities: managed``): dynamic resources over the
Infisical API, as Infisical's Terraform provider has them (its names in brackets).

- :class:`MachineIdentity` [``infisical_identity`` + ``infisical_project_identity`` +
  ``infisical_identity_universal_auth``]: a new identity with no organisation role, a member of one
  project with one role, logging in with Universal Auth. Destroy deletes it (its membership and
  auth go with it). It never takes over or deletes an identity it did not create.
- :class:`ClientSecret` [``infisical_identity_universal_auth_client_secret``]: one client secret,
  a Pulumi secret in the state; a new ``rotation`` makes a new one, and the old one is revoked only
  when Pulumi deletes the replaced resource, at the end of the `up`.
- :class:`OperatorLogin`: on a rotation, waits until the new client secret has been used (the
  operator logged in with it) before the `up` goes on to revoke the old one.

The identity Pulumi runs with (``infisical:clientId``/``clientSecret``) does all of it: it needs
an organisation role that may create identities, and a project role that may add members.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, UpdateResult

from ..clients.infisical import (
    Connection,
    InfisicalError,
    Landed,
    NotFound,
    PermissionDenied,
    Refused,
    connect,
)
from ..errors import FloeError
from .secret_value import WriterProvider

LOGIN_WAIT = 300.0
"""Seconds a rotation waits for the operator to log in with the new client secret."""


class _AdminProvider(WriterProvider):
    """Talks to Infisical as the identity Pulumi runs with, on ``site_url``."""

    def __init__(self, site_url: str) -> None:
        super().__init__()
        self.site_url = site_url

    def _connection(self) -> Connection:
        return connect(self._credentials())


def _refused(conn: Connection, action: str, refused: Refused, needs: str) -> InfisicalError:
    if isinstance(refused, PermissionDenied):
        return InfisicalError(
            f"machine identity {conn.client_id} (the one Pulumi uses, infisical:clientId) may not {action} on "
            f"{conn.host} (HTTP {refused}): it needs {needs}"
        )
    return InfisicalError(f"could not {action} on {conn.host}: HTTP {refused}")


def _post(conn: Connection, what: str, path: str, body: dict[str, Any],
          on_retry: Callable[[bool], None] | None = None) -> dict[str, Any]:
    return dict(conn.call(what, lambda c: c.api.post(path=path, model=dict, json=body).data, on_retry))


REVIEWER_WAIT = 60.0
"""Seconds to wait for the cluster to fill the token reviewer's Secret (its token controller)."""


def kubernetes_auth_settings(login: dict[str, Any]) -> dict[str, Any]:
    """The identity's Kubernetes Auth, read from the cluster: the API server's URL (``host``, else
    the kubeconfig's), its CA and the token reviewer's JWT (the Secret the stack made; the cluster
    fills it). Never kept in the state."""
    from ..clients.kube import Cluster

    cluster = Cluster.connect(login.get("kube_context"))
    deadline = time.monotonic() + REVIEWER_WAIT
    where = f"{login['namespace']}/{login['reviewer_secret']}"
    while True:
        data = cluster.secret_data(login["namespace"], login["reviewer_secret"]) or {}
        if data.get("token") and data.get("ca.crt"):
            break
        if time.monotonic() > deadline:
            raise InfisicalError(
                f"the cluster at {cluster.server} did not fill the token reviewer's Secret {where} within "
                f"{REVIEWER_WAIT:.0f}s: its token controller (kube-controller-manager, with a service-account "
                "private key) must run"
            )
        time.sleep(1)
    return {
        "kubernetesHost": login.get("host") or cluster.server, "caCert": data["ca.crt"],
        "tokenReviewerJwt": data["token"], "allowedNamespaces": login["namespace"],
        "allowedNames": login["service_account"], "allowedAudience": "",
    }


class MachineIdentityProvider(_AdminProvider):
    """Inputs: ``name``, ``project_slug``, ``role``, and ``kubernetes`` (the Kubernetes Auth to give
    it; else Universal Auth). Outputs add ``identity_id``, ``client_id`` (Universal Auth)."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("name", "project_slug", "role", "kubernetes") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "project_slug"],
                          delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection()
        project = conn.project(props["project_slug"])
        name = props["name"]
        where = f"machine identity {name}"
        # The name is the identity's only mark: with a nonce, an attempt whose answer was lost can
        # be told apart from every identity that existed before (which is never touched).
        marked = f"{name}-{secrets.token_hex(3)}"
        landed = Landed()
        try:
            created = _post(conn, f"create {where}", "/api/v1/identities",
                            {"name": marked, "organizationId": project["orgId"], "role": "no-access"}, landed)
        except Refused as exc:
            raise _refused(conn, f"create {where} in organization {project['orgId']}", exc,
                           "an organization role that may create identities") from None
        identity_id = str(created["identity"]["id"])
        if landed.maybe:
            self._drop_twins(conn, project["orgId"], marked, identity_id)
        try:
            _post(conn, f"add {where} to project {props['project_slug']}",
                  f"/api/v2/workspace/{project['id']}/identity-memberships/{identity_id}", {"role": props["role"]})
            if props.get("kubernetes"):
                _post(conn, f"give {where} Kubernetes Auth", f"/api/v1/auth/kubernetes-auth/identities/{identity_id}",
                      kubernetes_auth_settings(props["kubernetes"]))
                client_id = ""
            else:
                auth = _post(conn, f"give {where} Universal Auth",
                             f"/api/v1/auth/universal-auth/identities/{identity_id}", {})
                client_id = str(auth["identityUniversalAuth"]["clientId"])
        except Refused as exc:
            self._delete(conn, identity_id)  # nothing half made stays behind
            raise _refused(conn, f"add {where} to project {props['project_slug']} as {props['role']}", exc,
                           "a project role that may add members (admin)") from None
        except (InfisicalError, FloeError):
            self._delete(conn, identity_id)
            raise
        outs = {**props, "identity_id": identity_id, "identity_name": marked, "client_id": client_id,
                "project_id": str(project["id"])}
        return CreateResult(identity_id, outs)

    @staticmethod
    def _drop_twins(conn: Connection, org_id: str, marked: str, keep: str) -> None:
        """Delete identities named ``marked`` other than ``keep``: made by attempts of this create
        whose answers were lost (the nonce makes the name this create's alone)."""
        listed = conn.call("list identities", lambda c: c.api.get(
            path="/api/v1/identities", model=dict, params={"orgId": org_id}).data)
        for entry in listed.get("identities", []):
            identity = entry.get("identity") or {}
            if identity.get("name") == marked and str(identity.get("id")) != keep:
                MachineIdentityProvider._delete(conn, str(identity["id"]))

    @staticmethod
    def _delete(conn: Connection, identity_id: str) -> None:
        try:
            conn.call(f"delete machine identity {identity_id}",
                      # A body: the SDK sends Content-Type JSON, and Infisical answers an empty one 500.
                      lambda c: c.api.delete(path=f"/api/v1/identities/{identity_id}", model=dict, json={}))
        except NotFound:
            pass  # already gone: what delete wants
        except Refused as exc:
            raise _refused(conn, f"delete machine identity {identity_id}", exc,
                           "an organization role that may delete identities") from None

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = self._connection()
        try:
            conn.call(f"read machine identity {id_}", lambda c: c.api.get(path=f"/api/v1/identities/{id_}", model=dict))
        except NotFound:
            return ReadResult(id_="", outs={})
        except Refused as exc:
            raise _refused(
                conn, f"read machine identity {id_}", exc, "an organization role that may read identities"
            ) from None
        return ReadResult(id_, props)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection()
        outs = {**olds, **news}
        try:
            if olds.get("role") != news["role"]:
                conn.call(f"change the project role of machine identity {id_}", lambda c: c.api.patch(
                    path=f"/api/v2/workspace/{olds['project_id']}/identity-memberships/{id_}", model=dict,
                    json={"roles": [{"role": news["role"], "isTemporary": False}]}))
            if news.get("kubernetes") and olds.get("kubernetes") != news["kubernetes"]:
                conn.call(f"change the Kubernetes Auth of machine identity {id_}", lambda c: c.api.patch(
                    path=f"/api/v1/auth/kubernetes-auth/identities/{id_}", model=dict,
                    json=kubernetes_auth_settings(news["kubernetes"])))
            if olds.get("name") != news["name"]:
                marked = f"{news['name']}-{secrets.token_hex(3)}"
                conn.call(f"rename machine identity {id_}", lambda c: c.api.patch(
                    path=f"/api/v1/identities/{id_}", model=dict, json={"name": marked}))
                outs["identity_name"] = marked
        except Refused as exc:
            raise _refused(conn, f"update machine identity {id_}", exc, "a role that may edit identities") from None
        return UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._delete(self._connection(), id_)


class ClientSecretProvider(_AdminProvider):
    """Inputs: ``identity_id``, ``rotation``. Outputs add ``client_secret`` (a Pulumi secret)."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("identity_id", "rotation") if olds.get(k) != news.get(k)]
        # A new client secret before the old one goes (the default), so the operator always has one.
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection()
        identity = props["identity_id"]
        path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets"
        nonce = f"floe-infra rotation {props['rotation'] or 0} {secrets.token_hex(4)}"
        landed = Landed()
        try:
            made = _post(conn, f"create a client secret for machine identity {identity}", path,
                         {"description": nonce, "numUsesLimit": 0, "ttl": 0}, landed)
        except Refused as exc:
            raise _refused(conn, f"create a client secret for machine identity {identity}", exc,
                           "an organization role that may create identities") from None
        secret_id = str(made["clientSecretData"]["id"])
        if landed.maybe:  # revoke the twins of attempts whose answers were lost: the nonce is this create's
            listed = conn.call("list client secrets", lambda c: c.api.get(path=path, model=dict).data)
            for twin in listed.get("clientSecretData", []):
                if twin.get("description") == nonce and str(twin.get("id")) != secret_id:
                    self._revoke(conn, identity, str(twin["id"]))
        return CreateResult(secret_id, {**props, "client_secret": str(made["clientSecret"])})

    @staticmethod
    def _revoke(conn: Connection, identity: str, secret_id: str) -> None:
        path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets/{secret_id}/revoke"
        try:
            _post(conn, f"revoke client secret {secret_id} of machine identity {identity}", path, {})
        except NotFound:
            pass  # its identity is gone, and the secret with it
        except Refused as exc:
            raise _refused(conn, f"revoke a client secret of machine identity {identity}", exc,
                           "an organization role that may delete identities") from None

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._revoke(self._connection(), props["identity_id"], id_)


class OperatorLoginProvider(_AdminProvider):
    """Inputs: ``identity_id``, ``client_secret_id``, ``wait``. Creating it waits for nothing (a new
    stack's operator may not run yet); an update, a rotation, waits until Infisical counts a login
    with the new client secret, so the old one is revoked only after the operator has moved on."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("client_secret_id") != news.get("client_secret_id"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"login-{props['identity_id']}", props)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection()
        identity, secret_id = news["identity_id"], news["client_secret_id"]
        path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets/{secret_id}"
        deadline = time.monotonic() + float(news.get("wait") or LOGIN_WAIT)
        while True:
            used = conn.call("read the new client secret", lambda c: c.api.get(path=path, model=dict).data)
            if int(used.get("clientSecretData", {}).get("clientSecretNumUses") or 0) > 0:
                return UpdateResult(news)
            if time.monotonic() > deadline:
                raise InfisicalError(
                    f"the operator has not logged in with the new client secret of machine identity {identity} "
                    f"within {news.get('wait') or LOGIN_WAIT:.0f}s, so the old one is not revoked: check it with "
                    "`floe secrets status`, then run `pulumi up` again"
                )
            time.sleep(2)


for _provider in (MachineIdentityProvider, ClientSecretProvider, OperatorLoginProvider):
    _provider.__module__ = "floe_infra.identities"  # pickled into the state under this path


class MachineIdentity(pulumi.dynamic.Resource, module="infisical", name="MachineIdentity"):
    """A machine identity this stack made, a member of ``project_slug`` with ``role``."""

    identity_id: pulumi.Output[str]
    client_id: pulumi.Output[str]

    def __init__(self, name: str, *, identity_name: str, project_slug: str, role: str, site_url: str,
                 kubernetes: dict[str, Any] | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"name": identity_name, "project_slug": project_slug, "role": role, "kubernetes": kubernetes,
                 "identity_id": None, "client_id": None, "identity_name": None, "project_id": None}
        super().__init__(MachineIdentityProvider(site_url), name, props, opts)


class ClientSecret(pulumi.dynamic.Resource, module="infisical", name="ClientSecret"):
    """One Universal Auth client secret of ``identity_id``; a new ``rotation`` replaces it."""

    client_secret: pulumi.Output[str]

    def __init__(self, name: str, *, identity_id: pulumi.Input[str], rotation: str, site_url: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"identity_id": identity_id, "rotation": rotation, "client_secret": None}
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
        super().__init__(ClientSecretProvider(site_url), name, props, pulumi.ResourceOptions.merge(opts, secret_opts))


class OperatorLogin(pulumi.dynamic.Resource, module="infisical", name="OperatorLogin"):
    """Waits, on a rotation, for the operator's first login with the new client secret."""

    def __init__(self, name: str, *, identity_id: pulumi.Input[str], client_secret_id: pulumi.Input[str],
                 site_url: str, wait: float = LOGIN_WAIT, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"identity_id": identity_id, "client_secret_id": client_secret_id, "wait": wait}
        super().__init__(OperatorLoginProvider(site_url), name, props, opts)
