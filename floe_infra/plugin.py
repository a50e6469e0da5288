"""The ``SecretsPlugin`` interface of the design document, and the registry that finds plugins.

A plugin is where a stack's secrets live (``plugins.secrets.type``). The ``floe secrets`` commands
talk to Infisical and Kubernetes only through one, so a new backend (Vault, say) is a package with
an entry point in the ``floe.secrets`` group and needs no change here.

What ``name`` and ``namespace`` mean depends on the plugin, because "a secret" is a different
thing in each backend: a folder of keys in Infisical, an object of keys in Kubernetes. See each
implementation's docstring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from typing import Any, Literal

from .errors import FloeError
from .manifest import InfisicalSettings, Reference
from .registry import ENTRY_POINT_GROUP, plugin_types

MOUNT_ROOT = "/etc/floe/secrets"

SyncStatus = Literal["Synced", "Failed", "Pending", "Missing"]


class PluginError(FloeError):
    """A backend could not be reached or refused; one line that says what to do."""


@dataclass(frozen=True)
class PluginContext:
    """What a plugin needs to know about the stack it serves."""

    stack: str
    environment: str
    infisical: InfisicalSettings | None = None
    kube_context: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """A third-party plugin's ``plugins.secrets.config``, for it to validate."""


@dataclass(frozen=True)
class KeyReport:
    """What the backend holds for one reference: key names (never values), or None for nothing."""

    reference: str
    location: str
    keys: frozenset[str] | None


@dataclass(frozen=True)
class SyncState:
    """One synced resource in the cluster and what its controller last said about it."""

    name: str
    namespace: str
    kind: str
    status: SyncStatus
    message: str = ""
    project: str = ""
    environment: str = ""
    last_sync: datetime | None = None


class SecretsPlugin(ABC):
    """A secrets backend: the design's four methods, plus the two the day-2 commands need."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    @abstractmethod
    def get_secret(self, name: str, namespace: str) -> dict[str, str] | None:
        """The keys and values of one secret, or None when there is none."""

    @abstractmethod
    def create_secret(self, name: str, namespace: str, data: Mapping[str, str]) -> None:
        """Create one secret holding ``data``; fails if it exists."""

    def inject_env_vars(self, secret_refs: Sequence[str]) -> dict[str, Any]:
        """The container-spec fragment that exposes every key of these Secrets as variables.

        Every backend ends in a Kubernetes Secret named after the reference, so this is shared.
        """
        return {"envFrom": [{"secretRef": {"name": ref}} for ref in secret_refs]}

    def generate_secret_mounts(self, secret_name: str) -> dict[str, Any]:
        """The pod-spec volume and container volume mount that put the Secret's keys in files."""
        volume = f"secret-{secret_name}"
        return {
            "volumes": [{"name": volume, "secret": {"secretName": secret_name}}],
            "volumeMounts": [{"name": volume, "mountPath": f"{MOUNT_ROOT}/{secret_name}", "readOnly": True}],
        }

    @abstractmethod
    def key_reports(self, references: Sequence[Reference]) -> list[KeyReport]:
        """Which keys the backend holds for each reference, in the references' order."""

    @abstractmethod
    def sync_states(self, namespace: str | None) -> list[SyncState]:
        """This stack's synced resources in one namespace (None: all namespaces)."""


def parse_time(value: object) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def load_plugin(type_name: str, context: PluginContext) -> SecretsPlugin:
    types = plugin_types()
    if type_name not in types:
        raise PluginError(
            f"no secrets plugin {type_name!r}: installed are {', '.join(sorted(types))}; install the package "
            f"that provides it (entry point group {ENTRY_POINT_GROUP})"
        )
    module_name, _, class_name = types[type_name].partition(":")
    plugin_class = getattr(import_module(module_name), class_name)
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, SecretsPlugin)):
        raise PluginError(f"{types[type_name]} (plugin {type_name!r}) is not a SecretsPlugin")
    return plugin_class(context)
