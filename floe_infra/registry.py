"""Where secrets plugins are found: the built-ins, and entry points other packages install.

Kept apart from :mod:`floe_infra.plugin` so the manifest model can check ``plugins.secrets.type``
without importing any plugin.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "floe.secrets"
BUILT_IN = {
    "infisical": "floe_infra.plugin_infisical:InfisicalPlugin",
    "k8s": "floe_infra.plugin_k8s:KubernetesPlugin",
}


def plugin_types() -> dict[str, str]:
    """Plugin name → ``module:Class``: the built-ins, and whatever installed packages add."""
    found = dict(BUILT_IN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found
