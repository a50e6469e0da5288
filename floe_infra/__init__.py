"""floe-infra: secrets management for the floe data platform, as a Pulumi program.

The public surface is re-exported here, lazily: importing the package (as the ``floe`` command
does) loads nothing else, so ``floe --help`` answers before pydantic, Pulumi or any client loads.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .day2.plugin import PluginContext, SecretsPlugin, load_plugin
    from .deploy.components import InfisicalOperator, SecretsPlatform
    from .deploy.secret_value import InfisicalSecretValue, InfisicalSecretValueProvider
    from .errors import FloeError, ManifestError, StackConfigError
    from .model.manifest import LoadedManifest, Manifest, Reference, load_manifest
    from .model.registry import plugin_types
    from .model.settings import StackSettings, parse_stack_config, read_stack_files
    from .plan.desired import HelmRelease, InfisicalValue, KubeObject, SecretSource, StackPlan
    from .plan.planner import build_plan, deploy_config_problems

_EXPORTS = {
    "build_plan": "plan.planner",
    "deploy_config_problems": "plan.planner",
    "InfisicalOperator": "deploy.components",
    "SecretsPlatform": "deploy.components",
    "HelmRelease": "plan.desired",
    "InfisicalValue": "plan.desired",
    "KubeObject": "plan.desired",
    "SecretSource": "plan.desired",
    "StackPlan": "plan.desired",
    "FloeError": "errors",
    "ManifestError": "errors",
    "StackConfigError": "errors",
    "LoadedManifest": "model.manifest",
    "Manifest": "model.manifest",
    "Reference": "model.manifest",
    "load_manifest": "model.manifest",
    "PluginContext": "day2.plugin",
    "SecretsPlugin": "day2.plugin",
    "load_plugin": "day2.plugin",
    "plugin_types": "model.registry",
    "InfisicalSecretValue": "deploy.secret_value",
    "InfisicalSecretValueProvider": "deploy.secret_value",
    "StackSettings": "model.settings",
    "parse_stack_config": "model.settings",
    "read_stack_files": "model.settings",
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
