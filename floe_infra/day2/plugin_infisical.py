"""The ``infisical`` SecretsPlugin: secrets in Infisical, synced by the Infisical operator.

Here a reference's secret is an Infisical **folder**, in the manifest's project and the stack's
environment. One folder is one list request, however many keys it holds.
Credentials are the writer/reader identity of the environment: ``INFISICAL_UNIVERSAL_AUTH_CLIENT_ID``
and ``_SECRET``, on the manifest's ``site_url`` unless ``INFISICAL_HOST`` says otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from ..clients.auth import Credentials
from ..clients.errors import Refused
from ..clients.infisical import Connection, connect
from ..clients.kube import Cluster
from ..clients.transport import RetryPolicy
from ..errors import PluginError
from ..model.manifest import InfisicalSettings, Reference
from ..plan.desired import MANAGED_BY, STACK_LABEL
from ..plan.vocabulary import ESO_API, V1ALPHA1, V1BETA1, read_scope
from .plugin import KeyReport, PluginContext, SecretsPlugin, SyncState, SyncStatus, parse_time

READY = "secrets.infisical.com/ReadyToSyncSecrets"
TOKEN = "secrets.infisical.com/LoadedInfisicalToken"
STATIC_STATUS = "secrets.infisical.com/LastReconcileStatus"
STATIC_SYNCED_AT = "secrets.infisical.com/LastSuccessfulReconcileAt"
AUTH_READY = "secrets.infisical.com/IsReady"


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type"): c for c in obj.get("status", {}).get("conditions") or []}


def _status_of(condition: Mapping[str, Any] | None) -> tuple[SyncStatus, str]:
    """Synced/Failed/Pending from one condition (None or Unknown: not reconciled yet)."""
    if condition is None or condition.get("status") == "Unknown":
        return "Pending", "not reconciled yet"
    if condition.get("status") == "True":
        return "Synced", str(condition.get("message", ""))
    return "Failed", f"{condition.get('reason', 'Error')}: {condition.get('message', '')}"


def _state(obj: Mapping[str, Any], kind: str, status: tuple[SyncStatus, str], project: str, env: str,
           times: list[object]) -> SyncState:  # fmt: skip
    meta = obj.get("metadata", {})
    parsed = [t for t in map(parse_time, times) if t is not None]
    return SyncState(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        kind=kind,
        status=status[0],
        message=status[1],
        project=project,
        environment=env,
        last_sync=max(parsed, default=None),
    )


def sync_state(obj: Mapping[str, Any]) -> SyncState:
    """Status of one InfisicalSecret (v1alpha1) from the operator's conditions.

    The operator records no per-sync time for it: its status holds only conditions, set with
    ``meta.SetStatusCondition``, which moves ``lastTransitionTime`` only when a status flips. The
    most precise time left is the last write of the status subresource (``managedFields``), made
    when a condition's status or message (which carries the synced count) last changed.
    """
    conditions = _conditions(obj)
    ready, token = conditions.get(READY), conditions.get(TOKEN)
    failed_token = token is not None and token.get("status") == "False"
    status = _status_of(token) if failed_token else _status_of(ready)
    times: list[object] = [c.get("lastTransitionTime") for c in (ready, token) if c]
    fields = obj.get("metadata", {}).get("managedFields") or []
    times += [f.get("time") for f in fields if f.get("subresource") == "status"]
    scope = read_scope("InfisicalSecret", obj.get("spec") or {})
    assert scope is not None
    return _state(obj, "InfisicalSecret", status, scope.project, scope.environment, times)


def auth_failures(auths: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """Why each InfisicalAuth that is not ready is not, by (namespace, name): a failed login carries
    Infisical's answer there, while the static secrets that use it say only that it is not ready."""
    failures = {}
    for auth in auths:
        ready = _conditions(auth).get(AUTH_READY)
        if ready is not None and ready.get("status") == "False":
            meta = auth.get("metadata", {})
            failures[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = _status_of(ready)[1]
    return failures


def static_sync_states(
    obj: Mapping[str, Any], auth_failures: Mapping[tuple[str, str], str] | None = None
) -> list[SyncState]:
    """An InfisicalStaticSecret (v1beta1), as one state per Secret it fills (the references of one
    folder share one object): the object's status is each target's."""
    state = static_sync_state(obj, auth_failures)
    targets = [t for t in (obj.get("spec") or {}).get("targets") or [] if isinstance(t, Mapping)]
    if not targets:
        return [state]
    return [replace(state, name=str(t.get("name", "")), namespace=str(t.get("namespace", ""))) for t in targets]


def static_sync_state(obj: Mapping[str, Any], auth_failures: Mapping[tuple[str, str], str] | None = None) -> SyncState:
    """An InfisicalStaticSecret (v1beta1): its operator records the last successful reconcile
    time itself (the message of ``LastSuccessfulReconcileAt``), which is as precise as it gets.
    A failure because its InfisicalAuth is not ready gives that auth's reason too."""
    conditions = _conditions(obj)
    synced_at = conditions.get(STATIC_SYNCED_AT)
    times: list[object] = [synced_at.get("message")] if synced_at else []
    scope = read_scope("InfisicalStaticSecret", obj.get("spec") or {})
    assert scope is not None
    status = _status_of(conditions.get(STATIC_STATUS))
    generation = obj.get("metadata", {}).get("generation")
    observed = (conditions.get(STATIC_STATUS) or {}).get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        # A spec change (a new target, a new source) the operator has not reconciled yet.
        status = ("Pending", "not reconciled since its last change")
    ref = (obj.get("spec") or {}).get("infisicalAuthRef") or {}
    reason = (auth_failures or {}).get((str(ref.get("namespace", "")), str(ref.get("name", ""))))
    if status[0] == "Failed" and reason:
        status = ("Failed", f"{status[1]} (InfisicalAuth {ref.get('namespace')}/{ref.get('name')}: {reason})")
    return _state(obj, "InfisicalStaticSecret", status, scope.project, scope.environment, times)


def store_failures(stores: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Why each ClusterSecretStore that is not ready is not, by name: ESO validates a store by
    logging in, so a wrong client secret is said there, while its ExternalSecrets say only that
    they "could not get secret data from provider"."""
    failures = {}
    for store in stores:
        ready = _conditions(store).get("Ready")
        if ready is not None and ready.get("status") == "False":
            failures[str(store.get("metadata", {}).get("name", ""))] = _status_of(ready)[1]
    return failures


def external_sync_state(
    obj: Mapping[str, Any], project: str, env: str, store_failures: Mapping[str, str] | None = None
) -> SyncState:
    """An ESO ExternalSecret: condition ``Ready``; ESO records ``status.refreshTime`` per sync. A
    failure whose ClusterSecretStore is not ready gives that store's reason too."""
    status = _status_of(_conditions(obj).get("Ready"))
    store = str(((obj.get("spec") or {}).get("secretStoreRef") or {}).get("name", ""))
    reason = (store_failures or {}).get(store)
    if status[0] == "Failed" and reason:
        status = ("Failed", f"{status[1]} (ClusterSecretStore {store}: {reason})")
    return _state(obj, "ExternalSecret", status, project, env, [obj.get("status", {}).get("refreshTime")])


def _progress(message: str) -> None:
    print(f"floe: {message}", file=sys.stderr, flush=True)


CLI_POLICY = RetryPolicy(
    timeout=10.0,
    deadline=60.0,
    unreached_deadline=8.0,
    advice="run the command again once it answers",
    progress=_progress,
)
"""A person waits on the CLI: a host that cannot be reached fails within seconds, and each retry
says so on stderr."""


class InfisicalPlugin(SecretsPlugin):
    """Secrets in Infisical folders; the cluster side is an InfisicalStaticSecret per folder (v1beta1,
    the default: one target per reference), or an InfisicalSecret (v1alpha1) or ESO ExternalSecret
    per reference."""

    def __init__(self, context: PluginContext) -> None:
        super().__init__(context)
        try:
            self._config = InfisicalSettings.model_validate(context.options)
        except ValidationError:
            raise PluginError(
                "plugins.secrets.config is missing or invalid: the infisical plugin needs site_url and project_slug"
            ) from None

    def _settings(self) -> InfisicalSettings:
        return self._config

    def _connection(self) -> Connection:
        credentials = Credentials.resolve(self.context.config, self._settings().site_url)
        return connect(credentials, CLI_POLICY)

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
                project=settings.project_slug,  # by slug: a gone project answers 500, see Connection.call
            )
        except Refused as exc:
            raise conn.denied(exc, "list", path, settings.project_slug, self.context.environment) from None
        return {s.secretKey: s.secretValue if values else "" for s in listed.secrets}

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
        """The operator's objects of the configured API, and ESO ExternalSecrets if ESO is there."""
        settings = self._settings()
        cluster = Cluster.connect(self.context.kube_context)
        labels = {**MANAGED_BY, STACK_LABEL: self.context.stack}
        if settings.operator.api == "v1beta1":
            # Every namespace: a shared object lives in the operator's, its Secrets elsewhere.
            found = cluster.list(V1BETA1, "infisicalstaticsecrets", None, labels)
            failures = auth_failures(cluster.list(V1BETA1, "infisicalauths", settings.operator.namespace, labels))
            states = [
                state
                for o in found
                for state in static_sync_states(o, failures)
                if namespace is None or state.namespace == namespace
            ]
        else:
            states = [sync_state(o) for o in cluster.list(V1ALPHA1, "infisicalsecrets", namespace, labels)]
        external = cluster.list(ESO_API, "externalsecrets", namespace, labels, required=False)
        stores = (
            store_failures(cluster.list(ESO_API, "clustersecretstores", None, labels, required=False))
            if any(_conditions(o).get("Ready", {}).get("status") == "False" for o in external)
            else {}
        )
        self._cluster = cluster
        return states + [
            external_sync_state(o, settings.project_slug, self.context.environment, stores) for o in external
        ]

    _cluster: Cluster | None = None

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        cluster = self._cluster or Cluster.connect(self.context.kube_context)
        found = cluster.get_secret(name, namespace)
        return frozenset((found or {}).get("data") or {})  # no Secret: no keys
