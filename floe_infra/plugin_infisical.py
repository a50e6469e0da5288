"""The ``infisical`` SecretsPlugin: secrets in Infisical, synced by the Infisical operator.

Here a secret is an Infisical **folder**: ``namespace`` is its parent path and ``name`` its last
segment (``get_secret("snowflake", "/compute")`` reads ``/compute/snowflake``), in the manifest's
project and the stack's environment. One folder is one list request, however many keys it holds.
Credentials are the writer/reader identity of the environment: ``INFISICAL_UNIVERSAL_AUTH_CLIENT_ID``
and ``_SECRET``, on the manifest's ``site_url`` unless ``INFISICAL_HOST`` says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infisical_sdk.infisical_requests import APIError

from ._infisical import Connection, Credentials, connect
from ._kube import INFISICAL_GROUP, INFISICAL_PLURAL, INFISICAL_VERSION, Cluster
from .desired import MANAGED_BY, STACK_LABEL
from .manifest import InfisicalSettings, Reference
from .plugin import KeyReport, PluginError, SecretsPlugin, SyncState, SyncStatus, parse_time

READY = "secrets.infisical.com/ReadyToSyncSecrets"
TOKEN = "secrets.infisical.com/LoadedInfisicalToken"


def _folder(name: str, namespace: str) -> str:
    return f"{namespace.rstrip('/')}/{name}" if name else namespace


def sync_state(obj: Mapping[str, Any]) -> SyncState:
    """Status of one InfisicalSecret from the operator's conditions.

    The operator records no per-sync time: its status holds only conditions, and it sets them
    with ``meta.SetStatusCondition``, which moves ``lastTransitionTime`` only when a condition's
    status flips. The most precise time it leaves is the last write of the status subresource
    (``metadata.managedFields``), made when a condition's status or message (which carries the
    synced-secret count) last changed; the condition's transition time is the fallback.
    """
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    conditions = {c.get("type"): c for c in obj.get("status", {}).get("conditions") or []}
    ready, token = conditions.get(READY), conditions.get(TOKEN)
    status: SyncStatus
    if token is not None and token.get("status") == "False":
        status, message = "Failed", f"{token.get('reason', 'Error')}: {token.get('message', '')}"
    elif ready is None or ready.get("status") == "Unknown":
        status, message = "Pending", "the operator has not reconciled it yet"
    elif ready.get("status") == "True":
        status, message = "Synced", str(ready.get("message", ""))
    else:
        status, message = "Failed", f"{ready.get('reason', 'Error')}: {ready.get('message', '')}"
    times = [parse_time(c.get("lastTransitionTime")) for c in (ready, token) if c]
    times += [parse_time(f.get("time")) for f in meta.get("managedFields") or [] if f.get("subresource") == "status"]
    scope = spec.get("authentication", {}).get("universalAuth", {}).get("secretsScope", {})
    return SyncState(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        kind="InfisicalSecret",
        status=status,
        message=message,
        project=str(scope.get("projectSlug", "")),
        environment=str(scope.get("envSlug", "")),
        last_sync=max((t for t in times if t is not None), default=None),
    )


class InfisicalPlugin(SecretsPlugin):
    """Secrets in Infisical folders; the cluster side is one InfisicalSecret per reference."""

    def _settings(self) -> InfisicalSettings:
        if self.context.infisical is None:
            raise PluginError("plugins.secrets.config is missing: the infisical plugin needs site_url and project_slug")
        return self.context.infisical

    def _connection(self) -> Connection:
        credentials = Credentials.resolve(lambda _: None, self._settings().site_url, for_cli=True)
        return connect(credentials)

    def _list(self, conn: Connection, path: str, *, values: bool) -> dict[str, str]:
        settings = self._settings()
        try:
            listed = conn.call(
                f"list {path}",
                lambda c: c.secrets.list_secrets(
                    environment_slug=self.context.environment,
                    secret_path=path,
                    project_slug=settings.project_slug,
                    view_secret_value=values,
                    expand_secret_references=values,
                    include_imports=False,
                    recursive=False,
                ),
            )
        except APIError as exc:
            raise conn.denied(exc, "list", path, settings.project_slug, self.context.environment) from None
        return {s.secretKey: s.secretValue if values else "" for s in listed.secrets}

    def get_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        return self._list(self._connection(), _folder(name, namespace), values=True) or None

    def create_secret(self, name: str, namespace: str, data: Mapping[str, str]) -> None:
        conn, settings = self._connection(), self._settings()
        path = _folder(name, namespace)
        conn.ensure_folders(settings.project_slug, self.context.environment, path)
        project_id = conn.project_id(settings.project_slug)
        for key, value in data.items():

            def create(client: Any, key: str = key, value: str = value) -> object:
                return client.secrets.create_secret_by_name(
                    secret_name=key,
                    secret_path=path,
                    environment_slug=self.context.environment,
                    project_id=project_id,
                    secret_value=value,
                )

            try:
                conn.call(f"create {key} in {path}", create)
            except APIError as exc:
                where = f"{key} in {path}"
                raise conn.denied(exc, "create", where, settings.project_slug, self.context.environment) from None

    def key_reports(self, references: Sequence[Reference]) -> list[KeyReport]:
        """One list request per distinct folder (values not requested), one login."""
        conn = self._connection()
        folders: dict[str, dict[str, str]] = {}
        for ref in references:
            if ref.path not in folders:
                folders[ref.path] = self._list(conn, ref.path, values=False)
        where = f"{self._settings().project_slug}/{self.context.environment}"
        return [
            KeyReport(ref.name, f"{ref.path} in {where}", frozenset(folders[ref.path]) or None) for ref in references
        ]

    def sync_states(self, namespace: str | None) -> list[SyncState]:
        cluster = Cluster.connect(self.context.kube_context)
        labels = {**MANAGED_BY, STACK_LABEL: self.context.stack}
        objects = cluster.list(f"{INFISICAL_GROUP}/{INFISICAL_VERSION}", INFISICAL_PLURAL, namespace, labels)
        return [sync_state(o) for o in objects]
