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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..errors import PluginError
from ..model.manifest import Reference
from ..model.registry import ENTRY_POINT_GROUP, plugin_entry_points

SyncStatus = Literal["Synced", "Failed", "Pending", "Missing"]


@dataclass(frozen=True)
class PluginContext:
    """What a plugin needs to know about the stack it serves."""

    stack: str
    environment: str
    kube_context: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    """The plugin's ``plugins.secrets.config``, for it to validate."""
    config: Callable[[str], str | None] = field(default=lambda _: None, compare=False)
    """The stack's config by namespaced key (``infisical:clientId``), None where it has none."""


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
    """A secrets backend, as the day-2 commands see it: which keys each reference holds, and the
    state of the cluster objects that sync them."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    @abstractmethod
    def key_reports(self, references: Sequence[Reference]) -> list[KeyReport]:
        """Which keys the backend holds for each reference, in the references' order."""

    @abstractmethod
    def sync_states(self, namespace: str | None) -> list[SyncState]:
        """This stack's synced resources in one namespace (None: all namespaces)."""

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        """The key names (never values) a synced Secret holds, empty when there is no such Secret;
        None where the plugin cannot tell. A controller that reports success for a folder that
        holds nothing (ESO: Infisical lists a folder that does not exist as empty, and ESO with
        ``deletionPolicy: Retain`` then creates no Secret and says synced) is caught by comparing
        these with the keys the manifest declares."""
        return None


def parse_time(value: object) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def load_plugin(type_name: str, context: PluginContext) -> SecretsPlugin:
    found = plugin_entry_points()
    if type_name not in found:
        raise PluginError(
            f"no secrets plugin {type_name!r}: installed are {', '.join(sorted(found))}; install the package "
            f"that provides it (entry point group {ENTRY_POINT_GROUP})"
        )
    try:
        plugin_class = found[type_name].load()
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{found[type_name].value} (plugin {type_name!r}) cannot be loaded: {exc}") from None
    if not (isinstance(plugin_class, type) and issubclass(plugin_class, SecretsPlugin)):
        raise PluginError(f"{found[type_name].value} (plugin {type_name!r}) is not a SecretsPlugin")
    return plugin_class(context)
