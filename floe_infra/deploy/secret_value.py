"""``InfisicalSecretValue``: one key in one Infisical folder, written and tracked by Pulumi.

A Pulumi dynamic provider over the official ``infisicalsdk``. Pulumi pickles the provider into the
state, so it carries nothing but the manifest's site URL: credentials come from stack config in
:meth:`InfisicalSecretValueProvider.configure` and live, with the logged-in client, in
:mod:`floe_infra.clients.infisical`'s process cache (:class:`.writer.WriterProvider`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    UpdateResult,
)

from ..clients.errors import AlreadyExists, InfisicalError, NotFound, ProjectGone, ProjectNotFound, Refused
from ..clients.infisical import Connection, Landed, connect
from ..clients.transport import RetryPolicy
from ..model import names
from .writer import WriterProvider, is_unknown, plain_props

SCOPE = ("project_slug", "environment", "path")
"""Inputs that name where the secret lives: changing one moves it (replace)."""

_IN_PLACE = ("site_url", "key", "value", "comment")
"""``site_url`` too: a new URL may name the same server (a new DNS name, http to https), where a
replace's delete would remove the key its create had just found. So a new host is an update that
makes the new host hold the value, and never deletes at the old one."""

MARK = "managed by floe-infra, stack "
"""How a key's comment says which stack wrote it: ``MARK + owner`` (``<org>/<project>/<stack>``)."""


def owner_mark(owner: str) -> str:
    """The comment a key written for ``owner`` (``<pulumi org>/<project>/<stack>``) carries in
    Infisical: the stack takes over an existing key only when it carries this stack's mark (or
    adopt: true)."""
    return f"{MARK}{owner}" if owner else ""


def _found_owner(comment: str | None) -> str:
    comment = comment or ""
    return f"stack {comment.removeprefix(MARK)}" if comment.startswith(MARK) else "no floe-infra mark"


def _where(props: dict[str, Any]) -> str:
    return (
        f"key {props['key']} in project {props['project_slug']}, environment {props['environment']}, "
        f"path {props['path']}"
    )


class InfisicalSecretValueProvider(WriterProvider):
    """CRUD for one Infisical secret; ``diff`` and ``check`` never touch the network."""

    def __init__(self, site_url: str | None = None, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.site_url = site_url
        self.policy = policy

    def _connection(self, props: dict[str, Any]) -> Connection:
        credentials = self._credentials()
        if props.get("site_url"):  # the resource's own host (an import has none: the configured one)
            credentials = replace(credentials, host=str(props["site_url"]).rstrip("/"))
        return connect(credentials, self.policy)

    def check(self, olds: dict[str, Any], given: dict[str, Any]) -> CheckResult:
        news = plain_props(given)
        rules: dict[str, Callable[[str], str]] = {
            "project_slug": names.slug,
            "environment": names.slug,
            "path": names.folder_path,
            "key": names.env_var,
        }
        failures = []
        for prop, rule in rules.items():
            value = news.get(prop)
            if is_unknown(value):
                continue
            if not isinstance(value, str) or not value:
                failures.append(CheckFailure(prop, f"{prop} is required: set it to a non-empty string"))
                continue
            try:
                rule(value)
            except ValueError as exc:
                failures.append(CheckFailure(prop, f"{prop}: {exc}"))
        site_url = news.get("site_url")
        if site_url is not None and not is_unknown(site_url):
            try:
                names.url(str(site_url))
            except ValueError as exc:
                failures.append(CheckFailure("site_url", f"site_url: {exc}"))
        value = news.get("value")
        if not is_unknown(value) and not isinstance(value, str):
            failures.append(CheckFailure("value", "value is required: pass a string (a secret Output)"))
        owner = news.get("owner")
        if owner is not None and not is_unknown(owner) and not isinstance(owner, str):
            failures.append(CheckFailure("owner", "owner must be a string: <pulumi org>/<project>/<stack>"))
        problem = _replaces_legacy_value(plain_props(olds), news)
        if problem:
            failures.append(CheckFailure("value", problem))
        # The comment is the owner's mark: what makes a key this stack's (see create).
        comment = owner_mark(owner) if isinstance(owner, str) else news.get("comment") or ""
        inputs = {**given, "comment": comment, "adopt": bool(news.get("adopt", False))}
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = plain_props(olds), plain_props(news)
        changed = [k for k in (*SCOPE, *_IN_PLACE) if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in SCOPE]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = self._connection(props)
        where = _where(props)
        project_id = conn.project_id(props["project_slug"])
        conn.ensure_folders(props["project_slug"], props["environment"], props["path"])

        def create(client: Any) -> str:
            secret = client.secrets.create_secret_by_name(
                secret_name=props["key"],
                secret_path=props["path"],
                environment_slug=props["environment"],
                project_id=project_id,
                secret_value=props["value"],
                secret_comment=props.get("comment") or None,
            )
            return str(secret.id)

        try:
            # An attempt whose answer was lost may have made the key: the retry then finds it
            # there, carrying this stack's mark and value, and takes it over below.
            secret_id = conn.call(f"create {where}", create, Landed())
        except Refused as exc:
            if not isinstance(exc, AlreadyExists):
                raise self._failure(conn, exc, "create", props) from None
            return CreateResult(self._take_over(conn, props, project_id, where), _outputs(props))
        return CreateResult(secret_id, _outputs(props))

    def _take_over(self, conn: Connection, props: dict[str, Any], project_id: str, where: str) -> str:
        """An existing key becomes this stack's only when it carries this stack's mark and holds
        this stack's value (written by an attempt whose answer was lost, or by an `up` killed
        before its state recorded it), or when the manifest says adopt: true; then it is made to
        hold this stack's value and mark. Any other key is refused, whatever it holds: a rival
        stack's, or a person's."""
        existing = self._get(conn, props)
        mark = props.get("comment") or ""
        comment = getattr(existing, "secretComment", None) or ""
        marked = existing is not None and bool(mark) and comment == mark
        # The same value too: an attempt of ours that landed wrote exactly it, while a stack of the
        # same name elsewhere (the mark names org/project/stack, not the backend) writes its own.
        if marked and existing.secretValue == props["value"]:
            pulumi.log.warn(
                f"{where} already carried this stack's mark (an interrupted `pulumi up` wrote it): "
                "taken over as this stack's"
            )
        elif marked and not props.get("adopt"):
            raise InfisicalError(
                f"Infisical already has {where}, marked as this stack's ({_found_owner(comment)}) but holding "
                "another value, and this stack's state does not have it (a stack of the same name on another "
                "backend, or an interrupted `pulumi up` before the value changed): set adopt: true on that key in "
                "the manifest to take it over, or delete it there"
            )
        elif existing is not None and not props.get("adopt"):
            raise InfisicalError(
                f"Infisical already has {where}, not written by this stack ({_found_owner(comment)}): "
                "set adopt: true on that key in the manifest (adopt=True on this InfisicalSecretValue) to take it "
                "over, or delete it there"
            )
        return self._write(conn, props, project_id, props["key"], where)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        conn = self._connection(props)
        try:
            secret = self._get(conn, props)
        except ProjectNotFound as gone:
            _warn_project_gone(conn, props, gone, "refresh drops it from the state")
            return ReadResult(id_="", outs={})
        except Refused as exc:
            raise self._failure(conn, exc, "read", props) from None
        if secret is None:  # gone (or its folder is): the next up recreates it
            return ReadResult(id_="", outs={})
        return ReadResult(id_, _outputs({**props, "value": secret.secretValue, "comment": secret.secretComment or ""}))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = self._connection(news)
        project_id = conn.project_id(news["project_slug"])
        where = _where(news)
        current = olds.get("key", news["key"])
        if _host(olds) == _host(news):
            self._write(conn, news, project_id, current, where)
            return UpdateResult(_outputs(news))
        # Another URL for the host: the same server under a new name, or another server. Either way
        # the new host ends up holding the value, and nothing is deleted at the old one; a key
        # there is updated only when it carries this stack's mark (a key that is not there is made).
        for key in dict.fromkeys((current, news["key"])):
            existing = self._get(conn, {**news, "key": key})  # the host's own answer: it is there or not
            if existing is None:
                continue
            comment = existing.secretComment or ""
            ours = {olds.get("comment"), news.get("comment")} - {None, ""}
            if comment not in ours and not news.get("adopt"):
                raise InfisicalError(
                    f"Infisical at {conn.host} already has {_where({**news, 'key': key})}, not written by this "
                    f"stack ({_found_owner(comment)}): set adopt: true on that key in the manifest to take it over, "
                    "or delete it there"
                )
            self._write(conn, news, project_id, key, where)
            return UpdateResult(_outputs(news))
        self.create(news)
        return UpdateResult(_outputs(news))

    def _write(
        self,
        conn: Connection,
        props: dict[str, Any],
        project_id: str,
        current_key: str,
        where: str,
    ) -> str:
        """One PATCH: value (always: the API requires it), comment and, when renamed, the key; the
        secret's id. Safe to retry: when an attempt whose answer was lost renamed the key, the retry
        finds the old name gone, and the new one holding the value is success. A key that is not
        there is an error that says refresh."""
        landed = Landed()

        try:
            secret = conn.call(
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
                landed,
            )
        except Refused as exc:
            if isinstance(exc, NotFound) and exc.key_missing and landed.maybe and current_key != props["key"]:
                held = self._get(conn, props)
                if held is not None and held.secretValue == props["value"]:
                    return str(held.id)
            if isinstance(exc, NotFound) and exc.key_missing:
                raise InfisicalError(
                    f"{where} was deleted outside Pulumi: run `pulumi refresh` so the next `pulumi up` creates it"
                ) from None
            raise self._failure(conn, exc, "update", props) from None
        return str(secret.id)

    @staticmethod
    def _get(conn: Connection, props: dict[str, Any]) -> Any:
        """The secret ``props`` name as Infisical holds it, value included; None when it is not there,
        or its folder is not. :class:`ProjectNotFound` when its project is not."""
        try:
            return conn.call(
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
                project=props["project_slug"],  # by slug: a gone project answers 500, see Connection.call
            )
        except ProjectNotFound:
            raise
        except NotFound:
            return None

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        conn = self._connection(props)
        try:
            project_id = conn.project_id(props["project_slug"])
        except ProjectGone as gone:
            _warn_project_gone(conn, props, gone.refused, "delete has nothing to do")
            return
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
        except ProjectNotFound as gone:  # the project went after this process looked it up
            _warn_project_gone(conn, props, gone, "delete has nothing to do")
        except NotFound:
            pass  # already gone, or its folder is: what delete wants
        except Refused as exc:
            raise self._failure(conn, exc, "delete", props) from None

    @staticmethod
    def _failure(conn: Connection, exc: Refused, action: str, props: dict[str, Any]) -> InfisicalError:
        return conn.denied(exc, action, _where(props), props["project_slug"], props["environment"])


def _warn_project_gone(conn: Connection, props: dict[str, Any], refused: ProjectNotFound, outcome: str) -> None:
    """Say, as a Pulumi warning, that a key went with its project. A dynamic provider has no engine
    connection, so ``pulumi.log.warn`` writes ``warning: ...`` to its stderr, which the CLI shows."""
    pulumi.log.warn(
        f"{_where(props)}: Infisical at {conn.host} has no project {props['project_slug']} any more, "
        f"so the key is gone with it; {outcome} (HTTP {refused})"
    )


def _host(props: dict[str, Any]) -> str:
    return str(props.get("site_url") or "").rstrip("/")


def _outputs(props: dict[str, Any]) -> dict[str, Any]:
    """What the state keeps: ``adopt`` applies to the first create only, and is not kept to change
    what later operations do."""
    return {k: v for k, v in props.items() if k != "adopt"}


# Pickled into every stack's state under this path (a module of its own, which re-exports it).
InfisicalSecretValueProvider.__module__ = "floe_infra.secret_value"


def _replaces_legacy_value(olds: dict[str, Any], news: dict[str, Any]) -> str | None:
    """Why a generated value must not be written: the key was written by a release before
    RandomPassword (its inputs lack ``generated``, which this release always writes), and the value
    would change without a rotation mark. That is a stack upgraded without ``floe secrets upgrade``:
    each RandomPassword would be new, and every generated value in Infisical replaced. Checked in
    preview too, where a new RandomPassword's value is unknown."""
    if not olds or "generated" in olds or not news.get("generated") or news.get("rotation"):
        return None
    value = news.get("value")
    if not is_unknown(value) and value == olds.get("value"):
        return None
    owner = news.get("owner")
    stack = owner.rsplit("/", 1)[-1] if isinstance(owner, str) and owner else "<stack>"
    return (
        f"{news.get('path')}:{news.get('key')} holds a value that an earlier release wrote (made by "
        f"GeneratedPassword before RandomPassword, or from config), and this update would replace it with a "
        f"new one: run `floe secrets upgrade --stack {stack}` first, which moves every value GeneratedPassword "
        f"made into its RandomPassword unchanged; if a new value is what you want (a key that was config: true, "
        f"a rotation), set a rotation mark: `pulumi config set --stack {stack} --path "
        f"'floe:rotations.<reference>.{news.get('key')}' <mark>`"
    )


class InfisicalSecretValue(pulumi.dynamic.Resource, module="infisical", name="SecretValue"):
    """One Infisical secret owned by this stack. ``value`` is always a Pulumi secret."""

    project_slug: pulumi.Output[str]
    environment: pulumi.Output[str]
    path: pulumi.Output[str]
    key: pulumi.Output[str]
    value: pulumi.Output[str]
    comment: pulumi.Output[str]
    site_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        project_slug: pulumi.Input[str],
        environment: pulumi.Input[str],
        path: pulumi.Input[str],
        key: pulumi.Input[str],
        value: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
        *,
        owner: str,
        adopt: bool = False,
        site_url: str | None = None,
        generated: bool = False,
        rotation: str | None = None,
    ) -> None:
        """``owner``: ``<pulumi project>/<stack>``, written as the key's comment (:func:`owner_mark`);
        an existing key is taken over only when it carries this mark, or with ``adopt``.
        ``generated``: ``value`` is a RandomPassword's (``rotation``: its keeper), which lets check
        refuse a new value over one a release before RandomPassword made (see check)."""
        props: dict[str, Any] = {
            "project_slug": project_slug,
            "environment": environment,
            "path": path,
            "key": key,
            "value": pulumi.Output.secret(value),
            "owner": owner,
            "comment": owner_mark(owner),
            "adopt": adopt,
        }
        if site_url:
            props["site_url"] = site_url.rstrip("/")
        props["generated"] = generated  # False too: only inputs written before RandomPassword lack it
        if generated:
            props["rotation"] = rotation
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["value"])
        super().__init__(
            InfisicalSecretValueProvider(site_url), name, props, pulumi.ResourceOptions.merge(opts, secret_opts)
        )
