"""Machine identities this stack manages (``identities: managed``): dynamic resources over the
Infisical API, as Infisical's Terraform provider has them (its names in brackets).

- :class:`ProjectRole` [``infisical_project_role``]: a project role of the stack's own that may only
  read secrets in one environment, in the manifest's folders.
- :class:`MachineIdentity` [``infisical_identity`` + ``infisical_project_identity`` +
  ``infisical_identity_universal_auth`` / ``infisical_identity_kubernetes_auth``]: a new identity
  with no organisation role, a member of one project with one role, logging in with Universal Auth
  or Kubernetes Auth, with short-lived access tokens. A change of method, token settings, or of the
  cluster it checks Kubernetes logins with, is an update. Destroy deletes it (its membership and
  auth go with it). It never takes over or deletes an identity it did not create.
- :class:`ClientSecret` [``infisical_identity_universal_auth_client_secret``]: the current client
  secret, a Pulumi secret in the state; a new ``rotation`` makes a new one in place (an update, which
  a protected stack allows), and so does a refresh that finds it revoked.
- :class:`OperatorLogin`: on a rotation, waits until the new client secret has been used (the
  operator logged in with it), then revokes every other client secret of the identity.

The identity Pulumi runs with (``infisical:clientId``/``clientSecret``) does all of it: it needs
an organisation role that may create identities, and a project role that may add members.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from ..clients.errors import InfisicalError, NotFound, PermissionDenied, Refused
from ..clients.infisical import Connection, Landed, connect
from ..errors import FloeError
from .writer import WriterProvider, is_unknown, plain_value

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


def _post(
    conn: Connection, what: str, path: str, body: dict[str, Any], on_retry: Callable[[bool], None] | None = None
) -> dict[str, Any]:
    return dict(conn.call(what, lambda c: c.api.post(path=path, model=dict, json=body).data, on_retry))


REVIEWER_WAIT = 60.0
"""Seconds to wait for the cluster to fill the token reviewer's Secret (its token controller)."""

OPEN = ({"ipAddress": "0.0.0.0/0"}, {"ipAddress": "::/0"})
"""Infisical's own default for trusted IPs: anywhere."""


def _trusted(access: dict[str, Any]) -> list[dict[str, str]]:
    return [{"ipAddress": c} for c in access.get("trusted_ips") or ()] or [dict(o) for o in OPEN]


def _token_settings(access: dict[str, Any]) -> dict[str, Any]:
    """Access-token TTLs for either method (both always sent: Infisical checks TTL <= max TTL
    against the stored max when one is missing)."""
    return {
        "accessTokenTTL": int(access["ttl"]),
        "accessTokenMaxTTL": int(access["max_ttl"]),
        "accessTokenNumUsesLimit": 0,
        "accessTokenTrustedIps": _trusted(access),
    }


def universal_auth_settings(access: dict[str, Any]) -> dict[str, Any]:
    return {**_token_settings(access), "clientSecretTrustedIps": _trusted(access)}


def _reviewer(login: dict[str, Any], wait: float) -> tuple[Any, dict[str, str] | None]:
    from ..clients.kube import Cluster

    cluster = Cluster.connect(login.get("kube_context"))
    deadline = time.monotonic() + wait
    while True:
        data = cluster.secret_data(login["namespace"], login["reviewer_secret"]) or {}
        if data.get("token") and data.get("ca.crt"):
            return cluster, data
        if time.monotonic() >= deadline:
            return cluster, None
        time.sleep(1)


def kubernetes_auth_settings(login: dict[str, Any], access: dict[str, Any]) -> dict[str, Any]:
    """The identity's Kubernetes Auth, read from the cluster: the API server's URL (``host``, else
    the kubeconfig's), its CA, the token reviewer's JWT (the Secret the stack made; the cluster
    fills it) and the audience (``audience``, else the one the API server gives a token asked for
    with none, as the operator asks: its API audience). Never kept in the state."""
    cluster, data = _reviewer(login, REVIEWER_WAIT)
    if data is None:
        raise InfisicalError(
            f"the cluster at {cluster.server} did not fill the token reviewer's Secret "
            f"{login['namespace']}/{login['reviewer_secret']} within {REVIEWER_WAIT:.0f}s: its token controller "
            "(kube-controller-manager, with a service-account private key) must run"
        )
    return {
        "kubernetesHost": login.get("host") or cluster.server,
        "caCert": data["ca.crt"],
        "tokenReviewerJwt": data["token"],
        "allowedNamespaces": login["namespace"],
        "allowedNames": login["service_account"],
        "allowedAudience": login.get("audience")
        or cluster.default_audience(login["namespace"], login["reviewer_secret"]),
        **_token_settings(access),
    }


def cluster_fingerprint(login: dict[str, Any] | None) -> str | None:
    """A digest of what the identity's Kubernetes Auth reads from the cluster (API address, CA,
    reviewer JWT, audience): a new one is a diff. None when the cluster cannot say yet (the
    reviewer's Secret is not filled: a stack being made)."""
    if not login:
        return None
    try:
        cluster, data = _reviewer(login, 0)
        if data is None:
            return None
        # The default audience is not in it: reading it mints a token, and it changes only with the
        # API server's flags; set identity.audience to change it.
        parts = [login.get("host") or cluster.server, data["ca.crt"], data["token"], login.get("audience") or ""]
    except FloeError:
        return None
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _fingerprint(props: dict[str, Any]) -> str | None:
    """The digest check took, else (the reviewer's Secret was not filled then: a new stack) now."""
    return props.get("cluster_fingerprint") or cluster_fingerprint(props.get("kubernetes"))


def _attach_refused(conn: Connection, where: str, refused: Refused, props: dict[str, Any]) -> InfisicalError:
    method = "Kubernetes Auth" if props.get("kubernetes") else "Universal Auth"
    settings = "plugins.secrets.config.identity (token_ttl, token_max_ttl, trusted_ips"
    settings += ", audience)" if props.get("kubernetes") else ")"
    hint = (
        " (trusted_ips other than anywhere need Infisical's IP-allowlisting licence)"
        if (props.get("access") or {}).get("trusted_ips")
        else ""
    )
    return InfisicalError(
        f"Infisical at {conn.host} refused {method} for {where} (HTTP {refused}): check {settings}{hint}"
    )


def _method(props: dict[str, Any]) -> str:
    return "kubernetes-auth" if props.get("kubernetes") else "universal-auth"


IDENTITY_INPUTS = ("name", "project_slug", "role", "kubernetes")
ADDED_INPUTS = ("access", "site_url")
"""Inputs a state of an earlier release lacks: a change only when the program gives them (the SDK
drops a None input, so ``kubernetes: None``, universal auth, is simply absent)."""


class MachineIdentityProvider(_AdminProvider):
    """Inputs: ``name``, ``project_slug``, ``role``, ``access`` (``ttl``, ``max_ttl``,
    ``trusted_ips``), ``site_url``, and ``kubernetes`` (the Kubernetes Auth to give it; else
    Universal Auth). Outputs add ``identity_id``, ``client_id`` (Universal Auth) and
    ``cluster_fingerprint`` (Kubernetes Auth)."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult({**news, "cluster_fingerprint": cluster_fingerprint(news.get("kubernetes"))}, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in IDENTITY_INPUTS if olds.get(k) != news.get(k)]
        changed += [k for k in ADDED_INPUTS if k in news and olds.get(k) != news[k]]
        fingerprint = news.get("cluster_fingerprint")
        if fingerprint and fingerprint != olds.get("cluster_fingerprint"):
            changed.append("cluster_fingerprint")  # a new reviewer token, CA or API address
        held = olds.get("auth_method")  # as Infisical holds it (refresh): a switch that failed half-way
        if held is not None and held != _method(news):
            changed.append("auth_method")
        return DiffResult(
            changes=bool(changed), replaces=[k for k in changed if k == "project_slug"], delete_before_replace=False
        )

    def _attach(self, conn: Connection, where: str, identity_id: str, props: dict[str, Any]) -> str:
        """Give the identity its auth method; the Universal Auth client id ('' for Kubernetes Auth)."""
        access = props.get("access") or {}
        if props.get("kubernetes"):
            _post(
                conn,
                f"give {where} Kubernetes Auth",
                f"/api/v1/auth/kubernetes-auth/identities/{identity_id}",
                kubernetes_auth_settings(props["kubernetes"], access),
            )
            return ""
        auth = _post(
            conn,
            f"give {where} Universal Auth",
            f"/api/v1/auth/universal-auth/identities/{identity_id}",
            universal_auth_settings(access),
        )
        return str(auth["identityUniversalAuth"]["clientId"])

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
            created = _post(
                conn,
                f"create {where}",
                "/api/v1/identities",
                {"name": marked, "organizationId": project["orgId"], "role": "no-access"},
                landed,
            )
        except Refused as exc:
            raise _refused(
                conn,
                f"create {where} in organization {project['orgId']}",
                exc,
                "an organization role that may create identities",
            ) from None
        identity_id = str(created["identity"]["id"])
        if landed.maybe:
            self._drop_twins(conn, project["orgId"], marked, identity_id)
        self._warn_leftovers(conn, project["orgId"], name, identity_id)
        try:
            try:
                _post(
                    conn,
                    f"add {where} to project {props['project_slug']}",
                    f"/api/v2/workspace/{project['id']}/identity-memberships/{identity_id}",
                    {"roles": [{"role": props["role"], "isTemporary": False}]},
                )
            except Refused as exc:
                raise _refused(
                    conn,
                    f"add {where} to project {props['project_slug']} as {props['role']}",
                    exc,
                    "a project role that may add members (admin)",
                ) from None
            try:
                client_id = self._attach(conn, where, identity_id, props)
            except Refused as exc:
                raise _attach_refused(conn, where, exc, props) from None
        except (InfisicalError, FloeError):
            self._delete(conn, identity_id)  # nothing half made stays behind
            raise
        outs = {
            **props,
            "identity_id": identity_id,
            "identity_name": marked,
            "client_id": client_id,
            "project_id": str(project["id"]),
            "cluster_fingerprint": _fingerprint(props),
            "auth_method": _method(props),
        }
        return CreateResult(identity_id, outs)

    @staticmethod
    def _drop_twins(conn: Connection, org_id: str, marked: str, keep: str) -> None:
        """Delete identities named ``marked`` other than ``keep``: made by attempts of this create
        whose answers were lost (the nonce makes the name this create's alone)."""
        listed = conn.call(
            "list identities", lambda c: c.api.get(path="/api/v1/identities", model=dict, params={"orgId": org_id}).data
        )
        for entry in listed.get("identities", []):
            identity = entry.get("identity") or {}
            if identity.get("name") == marked and str(identity.get("id")) != keep:
                MachineIdentityProvider._delete(conn, str(identity["id"]))

    @staticmethod
    def _warn_leftovers(conn: Connection, org_id: str, name: str, made: str) -> None:
        """Name identities called like this one (``name-<nonce>``) that this create did not make:
        left by an `up` killed after Infisical made one and before the state recorded it (or made
        by a stack of the same name elsewhere, which is why they are named, not deleted)."""
        try:
            listed = conn.call(
                "list identities",
                lambda c: c.api.get(path="/api/v1/identities", model=dict, params={"orgId": org_id}).data,
            )
        except (Refused, InfisicalError):
            return  # a hint only: an identity that may not list identities gets none
        pattern = re.compile(re.escape(name) + r"-[0-9a-f]{6}")
        others = sorted(
            str(i["identity"]["id"])
            for i in listed.get("identities", [])
            if pattern.fullmatch(str((i.get("identity") or {}).get("name") or "")) and str(i["identity"]["id"]) != made
        )
        if others:
            pulumi.log.warn(
                f"Infisical has other machine identities named {name}-<nonce> ({', '.join(others)}), not in this "
                "stack's state: if an interrupted `pulumi up` left them, delete them in Infisical (Access Control "
                "> Machine Identities); if another stack of this name uses them, leave them"
            )

    @staticmethod
    def _delete(conn: Connection, identity_id: str) -> None:
        try:
            conn.call(
                f"delete machine identity {identity_id}",
                # A body: the SDK sends Content-Type JSON, and Infisical answers an empty one 500.
                lambda c: c.api.delete(path=f"/api/v1/identities/{identity_id}", model=dict, json={}),
            )
        except NotFound:
            pass  # already gone: what delete wants
        except Refused as exc:
            raise _refused(
                conn, f"delete machine identity {identity_id}", exc, "an organization role that may delete identities"
            ) from None

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = self._connection()
        try:
            method = self._auth_method(conn, id_)
        except NotFound:
            return ReadResult(id_="", outs={})
        except Refused as exc:
            raise _refused(
                conn, f"read machine identity {id_}", exc, "an organization role that may read identities"
            ) from None
        return ReadResult(id_, {**props, "auth_method": method})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection()
        # The outputs it made, and the inputs as now given: an input the SDK dropped (None, such as
        # kubernetes after a move to Universal Auth) must not live on from the old state.
        inputs = {*IDENTITY_INPUTS, *ADDED_INPUTS, "cluster_fingerprint", "auth_method"}
        outs = {**{k: v for k, v in olds.items() if k not in inputs}, **news}
        where = f"machine identity {id_}"
        try:
            try:
                current = self._auth_method(conn, id_)
            except NotFound:
                if olds.get("site_url") and olds.get("site_url") != news.get("site_url"):
                    # A new URL must name the server that holds the identity (a new DNS name, http
                    # to https): another server has none of it, and the identity is not moved.
                    raise InfisicalError(
                        f"machine identity {id_} is not at {conn.host}: the new site_url names another Infisical "
                        "server; to make the operator's identity there, run `pulumi up --replace` with this "
                        "resource's URN"
                    ) from None
                raise
            if olds.get("role") != news["role"]:
                conn.call(
                    f"change the project role of {where}",
                    lambda c: c.api.patch(
                        path=f"/api/v2/workspace/{olds['project_id']}/identity-memberships/{id_}",
                        model=dict,
                        json={"roles": [{"role": news["role"], "isTemporary": False}]},
                    ),
                )
            new_method = _method(news)
            if current != new_method:
                # One auth method at a time: the old goes (with its client secrets and their
                # tokens), then the new is attached. Read from Infisical, not the state, so that
                # an update that failed between the two is finished by the next one.
                if current:
                    with contextlib.suppress(NotFound):
                        conn.call(
                            f"remove the {current} of {where}",
                            lambda c: c.api.delete(
                                path=f"/api/v1/auth/{current}/identities/{id_}", model=dict, json={}
                            ),
                        )
                try:
                    outs["client_id"] = self._attach(conn, where, id_, news)
                except Refused as exc:
                    raise _attach_refused(conn, where, exc, news) from None
            elif news.get("kubernetes"):
                if (olds.get("kubernetes"), olds.get("access"), olds.get("cluster_fingerprint")) != (
                    news["kubernetes"],
                    news.get("access"),
                    news.get("cluster_fingerprint"),
                ):
                    conn.call(
                        f"change the Kubernetes Auth of {where}",
                        lambda c: c.api.patch(
                            path=f"/api/v1/auth/kubernetes-auth/identities/{id_}",
                            model=dict,
                            json=kubernetes_auth_settings(news["kubernetes"], news.get("access") or {}),
                        ),
                    )
            elif olds.get("access") != news.get("access"):
                conn.call(
                    f"change the Universal Auth of {where}",
                    lambda c: c.api.patch(
                        path=f"/api/v1/auth/universal-auth/identities/{id_}",
                        model=dict,
                        json=universal_auth_settings(news.get("access") or {}),
                    ),
                )
            if olds.get("name") != news["name"]:
                marked = f"{news['name']}-{secrets.token_hex(3)}"
                conn.call(
                    f"rename {where}",
                    lambda c: c.api.patch(path=f"/api/v1/identities/{id_}", model=dict, json={"name": marked}),
                )
                outs["identity_name"] = marked
            outs["cluster_fingerprint"] = _fingerprint(news)
            outs["auth_method"] = new_method
        except Refused as exc:
            raise _refused(conn, f"update {where}", exc, "a role that may edit identities") from None
        return UpdateResult(outs)

    @staticmethod
    def _auth_method(conn: Connection, id_: str) -> str:
        """The identity's auth method as Infisical has it ('' for none)."""
        found = conn.call(
            f"read machine identity {id_}", lambda c: c.api.get(path=f"/api/v1/identities/{id_}", model=dict).data
        )
        return str((found.get("identity") or {}).get("identity", {}).get("authMethod") or "")

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._delete(self._connection(), id_)


def role_permissions(environment: str, paths: list[str]) -> list[dict[str, Any]]:
    """Read secrets in ``environment``, in exactly ``paths``: what the operator's list of each
    folder needs (it reads no folder it is not given, and the project lookup needs membership only)."""
    return [
        {
            "subject": "secrets",
            "action": ["read"],
            "conditions": {"environment": environment, "secretPath": {"$in": list(paths)}},
        }
    ]


def _rules(permissions: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...], str, bool]]:
    """Permissions as Infisical may give them back (an action alone or in a list; ``inverted`` and
    ``fields`` spelled out or not), in one form to compare."""
    out = []
    for rule in permissions:
        actions = rule.get("action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        out.append(
            (
                str(rule.get("subject")),
                tuple(sorted(map(str, actions))),
                json.dumps(rule.get("conditions") or {}, sort_keys=True),
                bool(rule.get("inverted")),
            )
        )
    return sorted(out)


DESCRIPTION_MAX = 255
"""The longest description Infisical keeps (a varchar(255) column): a longer one fails the create."""


class ProjectRoleProvider(_AdminProvider):
    """Inputs: ``project_slug``, ``slug`` (the role's slug before its nonce), ``environment``,
    ``paths``, ``site_url``. Outputs add ``role_slug`` (with the nonce), ``role_id``."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("project_slug", "slug", "environment", "paths", "site_url")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k == "project_slug"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    @staticmethod
    def _body(props: dict[str, Any]) -> dict[str, Any]:
        head = f"floe-infra: the operator of stack {props['slug']} reads {props['environment']}, "
        description = head + f"folders {', '.join(props['paths'])}"
        if len(description) > DESCRIPTION_MAX:  # Infisical stores at most 255 characters (else a 500)
            description = head + f"{len(props['paths'])} folders (its permissions list them)"
        return {
            "description": description[:DESCRIPTION_MAX],
            "permissions": role_permissions(props["environment"], props["paths"]),
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection()
        slug = f"{props['slug']}-{secrets.token_hex(3)}"  # the nonce: a lost answer's role is this create's
        path = f"/api/v1/workspace/{props['project_slug']}/roles"
        landed = Landed()
        try:
            made = _post(
                conn, f"create project role {slug}", path, {"slug": slug, "name": slug, **self._body(props)}, landed
            )
        except Refused as exc:
            found = self._find(conn, props["project_slug"], slug) if landed.maybe else None
            if found is None:
                raise _refused(
                    conn,
                    f"create project role {slug} in project {props['project_slug']}",
                    exc,
                    "a project role that may create roles (admin); a plan that refuses custom roles "
                    "needs one Infisical project per environment, or identity.role: viewer",
                ) from None
            made = {"role": found}
        role = made["role"]
        return CreateResult(str(role["id"]), {**props, "role_slug": slug, "role_id": str(role["id"])})

    @staticmethod
    def _find(conn: Connection, project_slug: str, slug: str) -> dict[str, Any] | None:
        try:
            found = conn.call(
                f"read project role {slug}",
                lambda c: c.api.get(path=f"/api/v1/workspace/{project_slug}/roles/slug/{slug}", model=dict).data,
            )
        except NotFound:
            return None
        except Refused as exc:
            raise _refused(
                conn,
                f"read project role {slug} of project {project_slug}",
                exc,
                "a project role that may read roles (admin)",
            ) from None
        return dict(found["role"])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The role as Infisical holds it: one edited by hand (wider or narrower) reads back as
        another environment or paths, so the next `up` puts it back."""
        found = self._find(self._connection(), props["project_slug"], props["role_slug"])
        if not found:
            return ReadResult(id_="", outs={})
        permissions = found.get("permissions")
        wanted = role_permissions(props["environment"], props["paths"])
        if permissions is not None and _rules(permissions) != _rules(wanted):
            return ReadResult(id_, {**props, "environment": "", "paths": []})  # not what the stack made
        return ReadResult(id_, props)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection()
        try:
            conn.call(
                f"change project role {olds['role_slug']}",
                lambda c: c.api.patch(
                    path=f"/api/v1/workspace/{news['project_slug']}/roles/{id_}", model=dict, json=self._body(news)
                ),
            )
        except Refused as exc:
            raise _refused(
                conn, f"change project role {olds['role_slug']}", exc, "a project role that may edit roles (admin)"
            ) from None
        return UpdateResult({**olds, **news})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        conn = self._connection()
        try:
            conn.call(
                f"delete project role {props['role_slug']}",
                lambda c: c.api.delete(
                    path=f"/api/v1/workspace/{props['project_slug']}/roles/{id_}", model=dict, json={}
                ),
            )
        except NotFound:
            pass
        except Refused as exc:
            raise _refused(
                conn, f"delete project role {props['role_slug']}", exc, "a project role that may delete roles (admin)"
            ) from None


class ClientSecretProvider(_AdminProvider):
    """Inputs: ``identity_id``, ``rotation``. Outputs add ``secret_id`` (the current client
    secret's id), ``client_secret`` (a Pulumi secret) and ``valid`` (False once a refresh found it
    revoked). The resource's id is its first client secret's; the current one is ``secret_id``."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("identity_id", "rotation") if olds.get(k) != news.get(k)]
        if olds.get("valid") is False or "secret_id" not in olds:
            changed.append("valid")  # revoked outside Pulumi (refresh saw it), or a state of an earlier release
        # A new identity is a new client secret; an identity not known yet is no reason to replace:
        # a preview of an update of the identity (which keeps its id: only a new project replaces
        # it, and then this is replaced by `up` once the new id is known) shows it unknown, and a
        # replace of a protected resource would fail the preview.
        identity = plain_value(news.get("identity_id"))
        known = identity is not None and not is_unknown(identity)
        replaces = [k for k in changed if k == "identity_id" and known]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def _make(self, conn: Connection, identity: str, rotation: str) -> dict[str, Any]:
        path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets"
        nonce = f"floe-infra rotation {rotation or 0} {secrets.token_hex(4)}"
        landed = Landed()
        try:
            made = _post(
                conn,
                f"create a client secret for machine identity {identity}",
                path,
                {"description": nonce, "numUsesLimit": 0, "ttl": 0},
                landed,
            )
        except Refused as exc:
            raise _refused(
                conn,
                f"create a client secret for machine identity {identity}",
                exc,
                "an organization role that may create identities",
            ) from None
        secret_id = str(made["clientSecretData"]["id"])
        if landed.maybe:  # revoke the twins of attempts whose answers were lost: the nonce is this create's
            listed = conn.call("list client secrets", lambda c: c.api.get(path=path, model=dict).data)
            for twin in listed.get("clientSecretData", []):
                if twin.get("description") == nonce and str(twin.get("id")) != secret_id:
                    revoke_client_secret(conn, identity, str(twin["id"]))
        return {"secret_id": secret_id, "client_secret": str(made["clientSecret"]), "valid": True}

    def create(self, props: dict[str, Any]) -> CreateResult:
        made = self._make(self._connection(), props["identity_id"], props["rotation"])
        return CreateResult(made["secret_id"], {**props, **made})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = self._connection()
        secret_id = props.get("secret_id") or id_
        path = f"/api/v1/auth/universal-auth/identities/{props['identity_id']}/client-secrets/{secret_id}"
        try:
            held = conn.call("read the client secret", lambda c: c.api.get(path=path, model=dict).data)
            valid = not held.get("clientSecretData", {}).get("isClientSecretRevoked")
        except NotFound:
            valid = False
        except Refused as exc:
            if exc.status == 400 and "does not have universal auth" in exc.message:
                valid = False
            else:
                raise _refused(
                    conn,
                    f"read client secret {secret_id} of machine identity {props['identity_id']}",
                    exc,
                    "an organization role that may read identities",
                ) from None
        return ReadResult(id_, {**props, "valid": valid})

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        news = {k: v for k, v in news.items() if v is not None}
        if olds.get("rotation") == news.get("rotation") and olds.get("valid") is not False:
            # A state of an earlier release: name the current secret, make none.
            return UpdateResult({**olds, **news, "secret_id": olds.get("secret_id") or id_, "valid": True})
        # A new client secret beside the old one; OperatorLogin revokes the old once the operator
        # has logged in with the new (a revoked one, found by refresh, is already of no use).
        return UpdateResult({**olds, **news, **self._make(self._connection(), news["identity_id"], news["rotation"])})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        conn = self._connection()
        for secret_id in dict.fromkeys((props.get("secret_id") or id_, id_)):
            revoke_client_secret(conn, props["identity_id"], secret_id)


def revoke_client_secret(conn: Connection, identity: str, secret_id: str) -> None:
    path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets/{secret_id}/revoke"
    try:
        _post(conn, f"revoke client secret {secret_id} of machine identity {identity}", path, {})
    except NotFound:
        pass  # its identity is gone, and the secret with it
    except Refused as exc:
        if exc.status == 400 and "does not have universal auth" in exc.message:
            return  # its Universal Auth was removed (a switch to Kubernetes Auth), and its secrets with it

        raise _refused(
            conn,
            f"revoke a client secret of machine identity {identity}",
            exc,
            "an organization role that may delete identities",
        ) from None


class OperatorLoginProvider(_AdminProvider):
    """Inputs: ``identity_id``, ``client_secret_id``, ``wait``. Creating it waits for nothing (a new
    stack's operator may not run yet); an update, a rotation, waits until Infisical counts a login
    with the new client secret, then revokes every other client secret of the identity, so the old
    one goes only after the operator has moved on. Its access tokens live on to their TTL
    (Infisical does not end them): identity.token_ttl bounds that."""

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds.get("client_secret_id") != news.get("client_secret_id"))

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"login-{props['identity_id']}", props)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection()
        identity, secret_id = news["identity_id"], news["client_secret_id"]
        path = f"/api/v1/auth/universal-auth/identities/{identity}/client-secrets"
        deadline = time.monotonic() + float(news.get("wait") or LOGIN_WAIT)
        while True:
            used = conn.call(
                "read the new client secret", lambda c: c.api.get(path=f"{path}/{secret_id}", model=dict).data
            )
            if int(used.get("clientSecretData", {}).get("clientSecretNumUses") or 0) > 0:
                break
            if time.monotonic() > deadline:
                raise InfisicalError(
                    f"the operator has not logged in with the new client secret of machine identity {identity} "
                    f"within {news.get('wait') or LOGIN_WAIT:.0f}s, so the old one is not revoked: check it with "
                    "`floe secrets status`, then run `pulumi up` again"
                )
            time.sleep(2)
        listed = conn.call("list client secrets", lambda c: c.api.get(path=path, model=dict).data)
        for other in listed.get("clientSecretData", []):
            if str(other.get("id")) != secret_id and not other.get("isClientSecretRevoked"):
                revoke_client_secret(conn, identity, str(other["id"]))
        return UpdateResult(news)


for _provider in (MachineIdentityProvider, ProjectRoleProvider, ClientSecretProvider, OperatorLoginProvider):
    _provider.__module__ = "floe_infra.identities"  # pickled into the state under this path


class MachineIdentity(pulumi.dynamic.Resource, module="infisical", name="MachineIdentity"):
    """A machine identity this stack made, a member of ``project_slug`` with ``role``; ``access``:
    its tokens' ``ttl`` and ``max_ttl`` (seconds) and ``trusted_ips``."""

    identity_id: pulumi.Output[str]
    client_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        identity_name: str,
        project_slug: str,
        role: pulumi.Input[str],
        site_url: str,
        access: dict[str, Any],
        kubernetes: dict[str, Any] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "name": identity_name,
            "project_slug": project_slug,
            "role": role,
            "kubernetes": kubernetes,
            "access": access,
            "site_url": site_url,
            "identity_id": None,
            "client_id": None,
            "identity_name": None,
            "project_id": None,
            "cluster_fingerprint": None,
        }
        super().__init__(MachineIdentityProvider(site_url), name, props, opts)


class ProjectRole(pulumi.dynamic.Resource, module="infisical", name="ProjectRole"):
    """A project role that reads secrets of ``environment`` in ``paths`` only."""

    role_slug: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        project_slug: str,
        slug: str,
        environment: str,
        paths: list[str],
        site_url: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "project_slug": project_slug,
            "slug": slug,
            "environment": environment,
            "paths": paths,
            "site_url": site_url,
            "role_slug": None,
            "role_id": None,
        }
        super().__init__(ProjectRoleProvider(site_url), name, props, opts)


class ClientSecret(pulumi.dynamic.Resource, module="infisical", name="ClientSecret"):
    """The current Universal Auth client secret of ``identity_id``; a new ``rotation`` makes a new
    one in place (OperatorLogin revokes the old)."""

    client_secret: pulumi.Output[str]
    secret_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        identity_id: pulumi.Input[str],
        rotation: str,
        site_url: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "identity_id": identity_id,
            "rotation": rotation,
            "client_secret": None,
            "secret_id": None,
            "valid": None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["client_secret"])
        super().__init__(ClientSecretProvider(site_url), name, props, pulumi.ResourceOptions.merge(opts, secret_opts))


class OperatorLogin(pulumi.dynamic.Resource, module="infisical", name="OperatorLogin"):
    """Waits, on a rotation, for the operator's first login with the new client secret, then
    revokes the identity's other client secrets."""

    def __init__(
        self,
        name: str,
        *,
        identity_id: pulumi.Input[str],
        client_secret_id: pulumi.Input[str],
        site_url: str,
        wait: float = LOGIN_WAIT,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {"identity_id": identity_id, "client_secret_id": client_secret_id, "wait": wait}
        super().__init__(OperatorLoginProvider(site_url), name, props, opts)
