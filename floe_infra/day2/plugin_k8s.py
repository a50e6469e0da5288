"""The ``k8s`` SecretsPlugin: plain Kubernetes Secrets, made by the Pulumi program.

Here a reference's secret is a Kubernetes **Secret** of its name in its namespace. There is no
controller in between, so a Secret that exists is in sync by definition; its last
sync is the last write to it (``metadata.managedFields``), else its creation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..clients.kube import Cluster
from ..model.manifest import Reference
from ..plan.desired import MANAGED_BY, STACK_LABEL
from .plugin import KeyReport, SecretsPlugin, SyncState, parse_time


class KubernetesPlugin(SecretsPlugin):
    """Secrets as Kubernetes Secrets, read through the cluster's API."""

    _cluster: Cluster | None = None

    def _connect(self) -> Cluster:
        if self._cluster is None:
            self._cluster = Cluster.connect(self.context.kube_context)
        return self._cluster

    def key_reports(self, references: Sequence[Reference]) -> list[KeyReport]:
        cluster = self._connect()
        reports = []
        for ref in references:
            found = cluster.get_secret(ref.name, ref.namespace)
            keys = frozenset(found.get("data") or {}) if found is not None else None
            reports.append(KeyReport(ref.name, f"Secret {ref.namespace}/{ref.name}", keys or None))
        return reports

    def sync_states(self, namespace: str | None) -> list[SyncState]:
        labels = {**MANAGED_BY, STACK_LABEL: self.context.stack}
        return [_state(o) for o in self._connect().list("v1", "secrets", namespace, labels)]


def _state(obj: Mapping[str, Any]) -> SyncState:
    meta = obj.get("metadata", {})
    times = [parse_time(f.get("time")) for f in meta.get("managedFields") or []] + [
        parse_time(meta.get("creationTimestamp"))
    ]
    return SyncState(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        kind="Secret",
        status="Synced",
        message=f"{len(obj.get('data') or {})} keys",
        last_sync=max((t for t in times if t is not None), default=None),
    )
