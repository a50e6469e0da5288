"""The operators' API vocabulary: API versions, the names of the objects and charts the plan makes,
and where each kind of sync object names the Infisical folder it reads.

The plan writes objects with it; ``floe secrets plan`` (render) and the day-2 commands read objects
back with it, so the two sides cannot spell a kind or a field differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

V1ALPHA1 = "secrets.infisical.com/v1alpha1"
V1BETA1 = "secrets.infisical.com/v1beta1"
ESO_API = "external-secrets.io/v1"

CHART_NAME, RELEASE_NAME = "secrets-operator", "infisical-secrets-operator"
ESO_RELEASE, ESO_CHART = "external-secrets", "external-secrets"
CONNECTION_NAME, AUTH_NAME, KUBERNETES_AUTH_NAME = "infisical", "infisical-universal", "infisical-kubernetes"
IDENTITY_ID_KEY, IDENTITY_ID_SECRET = "identityId", "infisical-identity-id"
IDENTITY_ID_PLACEHOLDER = "<floe:operatorIdentityId>"
"""What a v1alpha1 InfisicalSecret names as its identity id before ``floe:operatorIdentityId`` is set."""
REVIEWER = "infisical-token-reviewer"
"""The token reviewer's ServiceAccount and token Secret (a managed identity's Kubernetes Auth)."""

AUTO_RELOAD_ANNOTATION = "secrets.infisical.com/auto-reload"
ORPHAN_ON_DELETE: Mapping[str, str] = MappingProxyType({"pulumi.com/deletionPropagationPolicy": "orphan"})
"""On every sync object: deleting it leaves the Secret it filled (see :mod:`.references`)."""

POLLING_KINDS = frozenset({"InfisicalSecret", "ExternalSecret"})
"""Sync objects that read one folder per refresh each (an InfisicalStaticSecret reads per source)."""
ESO_STORE_CHECK_MINUTES = 5
"""ESO's ``--store-requeue-interval``, as its chart sets it: each ClusterSecretStore logs in this often."""


@dataclass(frozen=True)
class Scope:
    """Which Infisical folder a sync object reads: project, environment, path."""

    project: str
    environment: str
    path: str


_SCOPE_FIELDS: dict[str, tuple[tuple[str | int, ...], tuple[str, str, str]]] = {
    # kind: (where in its spec, its names for project, environment and path)
    "InfisicalSecret": (("authentication", "*", "secretsScope"), ("projectSlug", "envSlug", "secretsPath")),
    "InfisicalStaticSecret": (("sources", 0), ("projectSlug", "environmentSlug", "secretPath")),
    "ClusterSecretStore": (
        ("provider", "infisical", "secretsScope"),
        ("projectSlug", "environmentSlug", "secretsPath"),
    ),
}


def read_scope(kind: str, spec: Mapping[str, Any]) -> Scope | None:
    """The one reader of the folder a sync object's spec names (each kind spells it its own way),
    for the plan's table and for objects read back from a cluster; None for other kinds. Fields a
    cluster object lacks read as ""."""
    if kind not in _SCOPE_FIELDS:
        return None
    where, fields = _SCOPE_FIELDS[kind]
    node: Any = spec
    for step in where:
        try:
            # "*": the one entry there (InfisicalSecret's universalAuth or kubernetesAuth)
            node = next(iter(node.values())) if step == "*" else node[step]
        except (KeyError, IndexError, TypeError, AttributeError, StopIteration):
            node = {}
            break
    values = [str(node.get(f, "")) if isinstance(node, Mapping) else "" for f in fields]
    return Scope(*values)
