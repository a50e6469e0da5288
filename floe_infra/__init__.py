"""floe-infra: secrets management for the floe data platform, as a Pulumi program.

The public surface is re-exported here. Names that need the Pulumi SDK load lazily, so the
``floe`` CLI (which never needs Pulumi) starts fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .build import build_plan, secret_config_problems
from .desired import HelmRelease, KubeObject, SecretSource, StackPlan
from .errors import FloeError, ManifestError, StackConfigError
from .manifest import LoadedManifest, Manifest, Reference, load_manifest
from .stack import StackSettings, parse_stack_config, read_stack_files

if TYPE_CHECKING:
    from .components import InfisicalOperator, SecretReference, SecretsPlatform
    from .secret_value import InfisicalSecretValue, InfisicalSecretValueProvider

_LAZY = {
    "InfisicalOperator": "components",
    "SecretReference": "components",
    "SecretsPlatform": "components",
    "InfisicalSecretValue": "secret_value",
    "InfisicalSecretValueProvider": "secret_value",
}

__all__ = [
    "FloeError",
    "HelmRelease",
    "InfisicalOperator",
    "InfisicalSecretValue",
    "InfisicalSecretValueProvider",
    "KubeObject",
    "LoadedManifest",
    "Manifest",
    "ManifestError",
    "Reference",
    "SecretReference",
    "SecretSource",
    "SecretsPlatform",
    "StackConfigError",
    "StackPlan",
    "StackSettings",
    "build_plan",
    "load_manifest",
    "parse_stack_config",
    "read_stack_files",
    "secret_config_problems",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
