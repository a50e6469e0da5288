"""Where secrets plugins are found: the entry points of group ``floe.secrets``, this package's own
(infisical, k8s, declared in pyproject.toml) and whatever other installed packages add.

Kept apart from :mod:`floe_infra.day2.plugin` so the manifest model can check
``plugins.secrets.type`` without importing any plugin.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "floe.secrets"
BUILT_IN = ("infisical", "k8s")
"""The types the Pulumi program deploys; their plugins are this package's entry points."""


def plugin_entry_points() -> dict[str, EntryPoint]:
    """Plugin name → its entry point (the first one installed, if two packages claim a name)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def plugin_types() -> dict[str, str]:
    """Plugin name → ``module:Class``."""
    return {name: ep.value for name, ep in plugin_entry_points().items()}
