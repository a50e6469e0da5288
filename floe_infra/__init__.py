"""floe-infra: secrets management for the floe data platform, as a Pulumi program.

The public surface is re-exported here, lazily: importing the package (as the ``floe`` command
does) loads nothing else, so ``floe --help`` answers before pydantic, Pulumi or any client loads.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import build_plan, deploy_config_problems
    from .components import InfisicalOperator, SecretsPlatform
    from .desired import HelmRelease, InfisicalValue, KubeObject, SecretSource, StackPlan
    from .errors import FloeError, ManifestError, StackConfigError
    from .manifest import LoadedManifest, Manifest, Reference, load_manifest
    from .plugin import PluginContext, SecretsPlugin, load_plugin
    from .registry import plugin_types
    from .secret_value import InfisicalSecretValue, InfisicalSecretValueProvider
    from .stack import StackSettings, parse_stack_config, read_stack_files

_EXPORTS = {
    "build_plan": "build",
    "deploy_config_problems": "build",
    "InfisicalOperator": "components",
    "SecretsPlatform": "components",
    "HelmRelease": "desired",
    "InfisicalValue": "desired",
    "KubeObject": "desired",
    "SecretSource": "desired",
    "StackPlan": "desired",
    "FloeError": "errors",
    "ManifestError": "errors",
    "StackConfigError": "errors",
    "LoadedManifest": "manifest",
    "Manifest": "manifest",
    "Reference": "manifest",
    "load_manifest": "manifest",
    "PluginContext": "plugin",
    "SecretsPlugin": "plugin",
    "load_plugin": "plugin",
    "plugin_types": "registry",
    "InfisicalSecretValue": "secret_value",
    "InfisicalSecretValueProvider": "secret_value",
    "StackSettings": "stack",
    "parse_stack_config": "stack",
    "read_stack_files": "stack",
}

__all__ = [
    "FloeError",
    "HelmRelease",
    "InfisicalOperator",
    "InfisicalSecretValue",
    "InfisicalSecretValueProvider",
    "InfisicalValue",
    "KubeObject",
    "LoadedManifest",
    "Manifest",
    "ManifestError",
    "PluginContext",
    "Reference",
    "SecretSource",
    "SecretsPlatform",
    "SecretsPlugin",
    "StackConfigError",
    "StackPlan",
    "StackSettings",
    "build_plan",
    "deploy_config_problems",
    "load_manifest",
    "load_plugin",
    "parse_stack_config",
    "plugin_types",
    "read_stack_files",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
