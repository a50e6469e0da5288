"""``InfisicalSecretValue``: one key in one Infisical folder, written and tracked by Pulumi.

A Pulumi dynamic provider over the official ``infisicalsdk``. Pulumi pickles the provider into the
state, so it carries nothing but the manifest's site URL: credentials come from stack config in
:meth:`InfisicalSecretValueProvider.configure` and live, with the logged-in client, in
:mod:`floe_infra._infisical`'s process cache.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi
from infisical_sdk.infisical_requests import APIError
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

from ..clients.infisical import (
    AlreadyExists,
    Connection,
    Credentials,
    InfisicalError,
    NotFound,
    Refused,
    RetryPolicy,
    classify,
    connect,
)
from ..model import names

SCOPE = ("site_url", "project_slug", "environment", "path")
"""Inputs that name where the secret lives: changing one moves it (replace). ``site_url`` is the
Infisical host: the same project slug on another server is another secret."""

_IN_PLACE = ("key", "value", "comment")

# Credentials per configured provider instance, outside the instance so pickling cannot reach them.
_CREDENTIALS: weakref.WeakKeyDictionary[InfisicalSecretValueProvider, Credentials | InfisicalError] = (
    weakref.WeakKeyDictionary()
)


def secret_id(project_slug: str, environment: str, path: str, key: str) -> str:
    return f"{project_slug}:{environment}:{path}:{key}"


def _parse_id(id_: str) -> dict[str, str]:
    parts = id_.split(":")
    if len(parts) != 4:
        raise InfisicalError(f"{id_!r} is not an InfisicalSecretValue id: write project:environment:/path:KEY")
    return dict(zip(("project_slug", "environment", "path", "key"), parts, strict=True))


def _unknown(value: Any) -> bool:
    return bool(value == rpc.UNKNOWN)


def _plain_value(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        # The SDK's deserializer turns a secret unknown into a secret None: nobody sends that.
        return rpc.UNKNOWN if inner is None else _plain_value(inner)
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, pulumi.Output):
        loop = asyncio.new_event_loop()
        try:
            known = loop.run_until_complete(value.is_known())
            return _plain_value(loop.run_until_complete(value.future())) if known else rpc.UNKNOWN
        finally:
            loop.close()
    return value


def _plain(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` as plain values, unknowns as ``rpc.UNKNOWN``: the engine sends ``check`` and
    ``diff`` a secret wrapped, an unknown (a value from a resource not yet created, in preview)
    as ``Unknown``, and either of them possibly as an output value."""
    return {name: _plain_value(value) for name, value in props.items()}


def _where(props: dict[str, Any]) -> str:
    return (
        f"key {props['key']} in project {props['project_slug']}, environment {props['environment']}, "
        f"path {props['path']}"
    )


class InfisicalSecretValueProvider(ResourceProvider):
    """CRUD for one Infisical secret; ``diff`` and ``check`` never touch the network."""

    def __init__(self, site_url: str | None = None, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.site_url = site_url
        self.policy = policy

    def configure(self, req: ConfigureRequest) -> None:
        # Missing credentials fail the first request, not configure: a preview makes none.
        try:
            _CREDENTIALS[self] = Credentials.resolve(req.config.get, self.site_url)
        except InfisicalError as exc:
            _CREDENTIALS[self] = exc

    def _connection(self, props: dict[str, Any]) -> Connection:
        credentials = _CREDENTIALS.get(self)
        if credentials is None:  # not configured by an engine: environment variables only
            credentials = _CREDENTIALS[self] = Credentials.resolve(lambda _: None, self.site_url)
        if isinstance(credentials, InfisicalError):
            raise credentials
        if props.get("site_url"):  # the resource's own host (an import has none: the configured one)
            credentials = replace(credentials, host=str(props["site_url"]).rstrip("/"))
        return connect(credentials, self.policy)

    def check(self, _olds: dict[str, Any], given: dict[str, Any]) -> CheckResult:
        news = _plain(given)
        rules: dict[str, Callable[[str], str]] = {
            "project_slug": names.slug,
            "environment": names.slug,
            "path": names.folder_path,
            "key": names.env_var,
        }
        failures = []
        for prop, rule in rules.items():
            value = news.get(prop)
            if _unknown(value):
                continue
            if not isinstance(value, str) or not value:
                failures.append(CheckFailure(prop, f"{prop} is required: set it to a non-empty string"))
                continue
            try:
                rule(value)
            except ValueError as exc:
                failures.append(CheckFailure(prop, f"{prop}: {exc}"))
        site_url = news.get("site_url")
        if site_url is not None and not _unknown(site_url):
            try:
                names.url(str(site_url))
            except ValueError as exc:
                failures.append(CheckFailure("site_url", f"site_url: {exc}"))
        value = news.get("value")
        if not _unknown(value) and not isinstance(value, str):
            failures.append(CheckFailure("value", "value is required: pass a string (a secret Output)"))
        comment = news.get("comment")
        if comment is not None and not _unknown(comment) and not isinstance(comment, str):
            failures.append(CheckFailure("comment", "comment must be a string"))
        inputs = {**given, "comment": comment or "", "adopt": bool(news.get("adopt", False))}
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = _plain(olds), _plain(news)
        changed = [k for k in (*SCOPE, *_IN_PLACE) if _unknown(news.get(k)) or olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in SCOPE]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection(props)
        where = _where(props)
        project_id = conn.project_id(props["project_slug"])
        conn.ensure_folders(props["project_slug"], props["environment"], props["path"])
        maybe_landed = False  # an earlier attempt went out and got no definite answer

        def retried(may_have_landed: bool) -> None:
            nonlocal maybe_landed
            maybe_landed = maybe_landed or may_have_landed

        def create(client: Any) -> bool:
            try:
                client.secrets.create_secret_by_name(
                    secret_name=props["key"],
                    secret_path=props["path"],
                    environment_slug=props["environment"],
                    project_id=project_id,
                    secret_value=props["value"],
                    secret_comment=props.get("comment") or None,
                )
            except APIError as exc:
                # Only an attempt whose outcome is unknown can have made the key: then it is ours.
                # One that was answered (429, an expired token, any 4xx) did nothing.
                if isinstance(classify(exc), AlreadyExists) and (maybe_landed or props.get("adopt")):
                    return False
                raise
            return True

        try:
            created = conn.call(f"create {where}", create, retried)
        except Refused as exc:
            if isinstance(exc, AlreadyExists):
                raise InfisicalError(
                    f"Infisical already has {where}, not created by this stack: delete it there, or set "
                    "adopt=True on this InfisicalSecretValue (adopt: true on the manifest key) to take it over"
                ) from None
            raise self._failure(conn, exc, "create", props) from None
        if not created:
            self._write(conn, props, project_id, props["key"], where)
        return CreateResult(secret_id(props["project_slug"], props["environment"], props["path"], props["key"]), props)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not props.get("key"):  # `pulumi import` / `get`: the id is all there is
            props = {**_parse_id(id_), "comment": "", "adopt": False, **props}
        conn = self._connection(props)
        try:
            secret = conn.call(
                f"read {_where(props)}",
                lambda c: c.secrets.get_secret_by_name(
                    secret_name=props["key"],
                    environment_slug=props["environment"],
                    secret_path=props["path"],
                    project_slug=props["project_slug"],
                    expand_secret_references=False,
                    include_imports=False,
                    view_secret_value=True,
                ),
            )
        except NotFound:
            return ReadResult(id_="", outs={})  # gone (or its folder is): the next up recreates it
        except Refused as exc:
            raise self._failure(conn, exc, "read", props) from None
        return ReadResult(id_, {**props, "value": secret.secretValue, "comment": secret.secretComment or ""})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection(news)
        project_id = conn.project_id(news["project_slug"])
        self._write(conn, news, project_id, olds.get("key", news["key"]), _where(news))
        return UpdateResult(news)

    def _write(self, conn: Connection, props: dict[str, Any], project_id: str, current_key: str, where: str) -> None:
        """One PATCH: value (always: the API requires it), comment and, when renamed, the key."""
        try:
            conn.call(
                f"update {where}",
                lambda c: c.secrets.update_secret_by_name(
                    current_secret_name=current_key,
                    secret_path=props["path"],
                    environment_slug=props["environment"],
                    project_id=project_id,
                    secret_value=props["value"],
                    secret_comment=props.get("comment") or "",
                    new_secret_name=props["key"] if props["key"] != current_key else None,
                ),
            )
        except Refused as exc:
            if isinstance(exc, NotFound) and not exc.folder_missing:
                raise InfisicalError(
                    f"{where} was deleted outside Pulumi: run `pulumi refresh` so the next `pulumi up` creates it"
                ) from None
            raise self._failure(conn, exc, "update", props) from None

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = self._connection(props)
        project_id = conn.project_id(props["project_slug"])
        try:
            conn.call(
                f"delete {_where(props)}",
                lambda c: c.secrets.delete_secret_by_name(
                    secret_name=props["key"],
                    secret_path=props["path"],
                    environment_slug=props["environment"],
                    project_id=project_id,
                ),
            )
        except NotFound:
            pass  # already gone is what delete wants
        except Refused as exc:
            raise self._failure(conn, exc, "delete", props) from None

    @staticmethod
    def _failure(conn: Connection, exc: Refused, action: str, props: dict[str, Any]) -> InfisicalError:
        return conn.denied(exc, action, _where(props), props["project_slug"], props["environment"])


# Pickled into every stack's state under this path (a module of its own, which re-exports it).
InfisicalSecretValueProvider.__module__ = "floe_infra.secret_value"


class InfisicalSecretValue(pulumi.dynamic.Resource, module="infisical", name="SecretValue"):
    """One Infisical secret owned by this stack. ``value`` is always a Pulumi secret."""

    project_slug: pulumi.Output[str]
    environment: pulumi.Output[str]
    path: pulumi.Output[str]
    key: pulumi.Output[str]
    value: pulumi.Output[str]
    comment: pulumi.Output[str]
    adopt: pulumi.Output[bool]
    site_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        project_slug: pulumi.Input[str],
        environment: pulumi.Input[str],
        path: pulumi.Input[str],
        key: pulumi.Input[str],
        value: pulumi.Input[str],
        comment: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
        *,
        adopt: bool = False,
        site_url: str | None = None,
    ) -> None:
        props = {
            "project_slug": project_slug,
            "environment": environment,
            "path": path,
            "key": key,
            "value": pulumi.Output.secret(value),
            "comment": comment or "",
            "adopt": adopt,
        }
        if site_url:
            props["site_url"] = site_url.rstrip("/")
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["value"])
        super().__init__(
            InfisicalSecretValueProvider(site_url), name, props, pulumi.ResourceOptions.merge(opts, secret_opts)
        )
