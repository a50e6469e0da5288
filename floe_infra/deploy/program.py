"""The Pulumi program: stack config → StackPlan → components, failing cleanly on bad input."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import pulumi

from ..errors import FloeError, StackConfigError
from ..model.manifest import load_manifest
from ..model.settings import (
    KNOWN_KEYS,
    NAMESPACE,
    SCALAR_KEYS,
    WRITER_NAMESPACE,
    StackSettings,
    committed_plaintext_secrets,
    parse_stack_config,
    writer_credentials_present,
)
from ..plan.desired import StackPlan
from ..plan.planner import build_plan, deploy_config_problems, require_deploy_config
from .components import PlatformArgs, SecretsPlatform, StackConfigSecrets


def settings_from_config(config: pulumi.Config) -> StackSettings:
    """Read ``floe:*`` through pulumi.Config; secrets only as presence and key names."""
    values: dict[str, object] = {k: v for k in SCALAR_KEYS if (v := config.get(k)) is not None}
    values.update(dict.fromkeys(_unknown_keys(), "set"))
    for key in ("operatorClientId", "operatorClientSecret"):
        if config.get(key) is not None:
            values[key] = True
    secret_values = config.get_object("secretValues")
    if secret_values is not None:
        values["secretValues"] = (
            {ref: dict.fromkeys(keys, True) for ref, keys in secret_values.items() if isinstance(keys, dict)}
            if isinstance(secret_values, dict) and all(isinstance(v, dict) for v in secret_values.values())
            else []
        )
    rotations = config.get_object("rotations")
    if rotations is not None:
        values["rotations"] = rotations
    settings = parse_stack_config(pulumi.get_stack(), values, f"stack {pulumi.get_stack()} config")
    writer = pulumi.Config(WRITER_NAMESPACE)
    return replace(settings, writer_credentials_set=writer_credentials_present(writer.get))


def _unknown_keys() -> set[str]:
    """``floe:*`` keys this program does not read, so a typo fails here as it does in plan."""
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = NAMESPACE + ":"
    keys = {k.removeprefix(prefix) for k in (*get_config_env(), *CONFIG.get()) if k.startswith(prefix)}
    return keys - set(KNOWN_KEYS)


PREVIEW_WITHOUT_SECRETS = "FLOE_PREVIEW_WITHOUT_SECRETS"
"""``true``: a preview (never an update) goes on when secret config is missing, showing those values
as unknown and each missing setting as a warning. For pull-request previews, which get no secrets."""


def preview_without_secrets() -> bool:
    return pulumi.runtime.is_dry_run() and os.environ.get(PREVIEW_WITHOUT_SECRETS, "").lower() == "true"


def plan_from_config(config: pulumi.Config, root: Path) -> StackPlan:
    plaintext = committed_plaintext_secrets(root, pulumi.get_stack())
    if plaintext:
        raise StackConfigError("\n".join(plaintext))
    settings = settings_from_config(config)
    plan = build_plan(load_manifest(root / settings.manifest), settings)
    for warning in plan.warnings:
        pulumi.log.warn(warning)
    if preview_without_secrets():
        for problem in deploy_config_problems(plan):
            pulumi.log.warn(f"preview without secrets ({PREVIEW_WITHOUT_SECRETS}): `pulumi up` would stop: {problem}")
    else:
        require_deploy_config(plan)
    if plan.over_read_budget and plan.settings.protect:
        # A protected stack is production: an operator that the server rate-limits is an outage.
        # Its preview fails too, so that a pipeline gated on the preview never deploys it.
        raise StackConfigError(
            f"stack {plan.settings.stack} is protected (floe:protect: true), and {plan.over_read_budget}"
        )
    return plan


class BadInput(SystemExit):
    """Bad manifest or stack config, already shown to the user as one error. Exit code 32 tells
    Pulumi's language host so, and it adds nothing (a ``RunError`` would add "Program exited with
    non-zero exit code: 1")."""

    SHOWN_TO_USER = 32

    def __init__(self, message: str) -> None:
        super().__init__(self.SHOWN_TO_USER)
        self.message = message


def _exit_quietly_when_cancelled() -> None:
    """The language host cancels a running program (after a resource failed, or on Ctrl-C) with
    SIGINT, and the SDK's runner does not catch the KeyboardInterrupt: every failed `up` would end in
    a Python traceback of the runner's. The engine has the error already; exit with status 1."""

    def cancelled(_signum: int, _frame: object) -> None:
        raise SystemExit(1)

    signal.signal(signal.SIGINT, cancelled)


def run() -> SecretsPlatform:
    """Entry point of ``__main__.py``: validate everything first, so bad input creates nothing."""
    _exit_quietly_when_cancelled()
    config = pulumi.Config(NAMESPACE)
    try:
        plan = plan_from_config(config, Path(pulumi.runtime.get_root_directory()))
    except FloeError as exc:
        pulumi.log.error(str(exc))
        raise BadInput(str(exc)) from None
    values = StackConfigSecrets(config, missing_as_unknown=preview_without_secrets())
    platform = SecretsPlatform("floe-secrets", PlatformArgs(plan, values))
    pulumi.export("secrets", platform.outputs)
    return platform
