"""``floe secrets validate | list | status``: the checks, as data, and how they print.

Each command builds a :class:`Report` (rows, problems, exit code) from the stack's references and
its plugin; the CLI only parses arguments and prints. Nothing here holds a secret value: plugins
return key names and sync states, never values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..errors import PluginError
from ..model.manifest import Reference, load_manifest
from ..model.names import UNIT_SECONDS
from ..model.settings import WRITER_ENV, WRITER_NAMESPACE, read_stack_files, writer_entries
from ..plan.planner import build_plan
from ..plan.render import aligned
from .plugin import PluginContext, SecretsPlugin, SyncState, load_plugin

OK, PROBLEM = 0, 1


@dataclass(frozen=True)
class Target:
    """What the day-2 commands read: the stack's references and its secrets plugin."""

    name: str
    environment: str
    manifest: str
    references: tuple[Reference, ...]
    plugin: SecretsPlugin
    read_budget: str | None = None  # why the operator would read more than the server allows, if it would


def open_target(
    project_dir: Path, stack: str, manifest: str | None, kube_context: str | None, *, read_budget: bool = False
) -> Target:
    """``read_budget``: also say whether the operator would read more than the server allows (it
    builds the stack's plan, which only ``validate`` reports)."""
    settings = read_stack_files(project_dir, stack)
    loaded = load_manifest(project_dir / (manifest or settings.manifest))
    secrets = loaded.model.plugins.secrets
    options = secrets.config.model_dump() if secrets.config is not None else secrets.options
    # The stack's cluster (floe:kubeContext) unless --context names another.
    context = PluginContext(
        stack,
        settings.environment,
        kube_context or settings.kube_context,
        options,
        config=_writer_config(project_dir, stack),
    )
    # The deployed type's read budget, as `floe secrets plan` and `pulumi preview` say it.
    budget = build_plan(loaded, settings).over_read_budget if read_budget and secrets.type == "infisical" else None
    return Target(
        name=stack,
        environment=settings.environment,
        manifest=str(manifest or settings.manifest),
        references=loaded.references(settings.jobs_namespace),
        plugin=load_plugin(secrets.type, context),
        read_budget=budget,
    )


def _writer_config(project_dir: Path, stack: str) -> Callable[[str], str | None]:
    """The stack's ``infisical:*`` config as ``pulumi up`` would see it, read only when asked: a
    plain value from ``Pulumi.<stack>.yaml``; an encrypted one through ``pulumi config get`` (the
    CLI holds the key), unless the environment variable Infisical's tools read is set, which is
    then used without decrypting anything."""
    entries = writer_entries(project_dir, stack)

    def get(key: str) -> str | None:
        name = key.removeprefix(f"{WRITER_NAMESPACE}:")
        value = entries.get(name)
        if value is None or isinstance(value, str):
            return value
        if os.environ.get(WRITER_ENV.get(name, "")):
            return None  # the environment's value: Credentials.resolve takes it next
        return _decrypt(project_dir, stack, key)

    return get


def _decrypt(project_dir: Path, stack: str, key: str) -> str:
    command = ["pulumi", "config", "get", "--stack", stack, key]
    env_name = WRITER_ENV.get(key.removeprefix(f"{WRITER_NAMESPACE}:"), "")
    fix = (
        f"make `{' '.join(command)}` work here (the pulumi CLI, logged in, with the stack's passphrase), "
        f"or export {env_name}"
    )
    try:
        done = subprocess.run(command, cwd=project_dir, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise PluginError(
            f"Pulumi.{stack}.yaml: {key} is encrypted and no pulumi CLI is on PATH to read it: {fix}"
        ) from None
    except subprocess.TimeoutExpired:
        raise PluginError(f"Pulumi.{stack}.yaml: `{' '.join(command)}` did not answer in 60 s: {fix}") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PluginError(f"Pulumi.{stack}.yaml: {key} is encrypted and `{' '.join(command)}` failed ({reason}): {fix}")
    return done.stdout.rstrip("\n")


@dataclass
class Report:
    """A command's result: a title, table rows, and whether anything was wrong."""

    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = OK


def validate(stack: Target, *, pre_deploy: bool = False) -> Report:
    """Every reference's source exists and holds every key the manifest declares.

    ``pre_deploy``: before ``pulumi up``, keys the stack writes itself (``generate:``,
    ``config: true``) may not exist yet; only keys set by hand must.
    """
    report = Report(f"Validating secret references in {stack.manifest}...", ("status", "reference", "detail"))
    declared = {r.name: {k.name for k in r.keys if not (pre_deploy and k.source != "manual")} for r in stack.references}
    written = {r.name for r in stack.references if any(k.source != "manual" for k in r.keys)}
    for found in stack.plugin.key_reports(stack.references):
        if not found.keys and not declared[found.reference] and pre_deploy and found.reference in written:
            ok, detail = True, "nothing yet; `pulumi up` writes its keys"
        elif not found.keys and found.reference not in written and not declared[found.reference]:
            ok, detail = (
                False,
                (
                    f"no secrets at {found.location}, and the manifest declares no keys for it, so nothing will fill "
                    "its Secret: set them there, or declare keys (generate: or config: true)"
                ),
            )
        elif not found.keys:
            ok, detail = False, f"no secrets at {found.location}"
        elif missing := sorted(declared[found.reference] - found.keys):
            ok, detail = False, f"missing keys {', '.join(missing)} at {found.location}"
        else:
            ok, detail = True, f"exists, {len(found.keys)} key{'' if len(found.keys) == 1 else 's'}"
        report.rows.append({"status": "ok" if ok else "problem", "reference": found.reference, "detail": detail})
        if not ok:
            report.exit_code = PROBLEM
    return report


@dataclass(frozen=True)
class _Cluster:
    """The stack's resources in the cluster (sorted), and references with none there."""

    states: list[SyncState]
    missing: list[Reference]

    @property
    def exit_code(self) -> int:
        return PROBLEM if self.missing or any(s.status == "Failed" for s in self.states) else OK


def _cluster(stack: Target, namespace: str | None) -> _Cluster:
    states = sorted(stack.plugin.sync_states(namespace), key=lambda s: (s.namespace, s.name))
    states = [_with_declared_keys(stack, s) for s in states]
    present = {(s.namespace, s.name) for s in states}
    missing = [
        r
        for r in stack.references
        if (namespace is None or r.namespace == namespace) and (r.namespace, r.name) not in present
    ]
    return _Cluster(states, missing)


def _with_declared_keys(stack: Target, state: SyncState) -> SyncState:
    """A Secret its controller calls synced but that lacks keys the manifest declares is not: ESO
    (and Infisical's list) treat a folder that does not exist as an empty one."""
    ref = next((r for r in stack.references if (r.namespace, r.name) == (state.namespace, state.name)), None)
    if state.status != "Synced" or ref is None or not ref.keys:
        return state
    held = stack.plugin.secret_keys(state.namespace, state.name)
    missing = sorted({k.name for k in ref.keys} - held) if held is not None else []
    if not missing:
        return state
    where, keys = f"Secret {state.namespace}/{state.name}", ", ".join(missing)
    found = (
        f"{where} lacks {keys}, which the manifest declares"
        if held
        else f"there is no {where} for the keys the manifest declares ({keys})"
    )
    return replace(
        state,
        status="Failed",
        message=(
            f"{state.kind} reports success, but {found}: does {ref.path} hold them in Infisical? "
            f"(`floe secrets validate --stack {stack.name}`)"
        ),
    )


def list_resources(stack: Target, namespace: str | None) -> Report:
    found = _cluster(stack, namespace)
    report = Report("", ("name", "namespace", "type", "sync_status"), exit_code=found.exit_code)
    for s in found.states:
        shown = s.status if s.status != "Failed" else f"Failed: {s.message}"
        report.rows.append({"name": s.name, "namespace": s.namespace, "type": s.kind, "sync_status": shown})
    for r in found.missing:
        report.rows.append({"name": r.name, "namespace": r.namespace, "type": "-", "sync_status": "Missing"})
    return report


def status(stack: Target, namespace: str | None, now: datetime | None = None) -> Report:
    found = _cluster(stack, namespace)
    report = Report("", ("name", "project", "env", "last_sync", "message"), exit_code=found.exit_code)
    now = now or datetime.now(UTC)
    for s in found.states:
        report.rows.append(
            {
                "name": s.name,
                "project": s.project or "-",
                "env": s.environment or stack.environment,
                "last_sync": ago(s.last_sync, now),
                "last_sync_time": s.last_sync.isoformat() if s.last_sync else None,
                "message": "" if s.status == "Synced" else f"{s.status}: {s.message}",
            }
        )
    for r in found.missing:
        report.rows.append(
            {"name": r.name, "project": "-", "env": stack.environment, "last_sync": "never",
             "last_sync_time": None, "message": "Missing: no resource in the cluster"}
        )  # fmt: skip
    return report


def ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    for unit in ("d", "h", "m"):  # the manifest's interval units, the largest that fits
        if seconds >= (size := UNIT_SECONDS[unit]):
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


# --- printing -----------------------------------------------------------------------------


def fancy(stream: TextIO) -> bool:
    """Symbols and colour only for a person at a terminal that has not asked for none."""
    return stream.isatty() and "NO_COLOR" not in os.environ


def render(report: Report, fmt: str, stream: TextIO | None = None) -> None:
    stream = sys.stdout if stream is None else stream
    if fmt == "json":
        json.dump({"rows": report.rows, "ok": report.exit_code == OK}, stream, indent=2)
        stream.write("\n")
        return
    if report.columns[0] == "status":
        _render_checks(report, stream)
    else:
        _render_table(report.rows, report.columns, stream)


def _render_checks(report: Report, stream: TextIO) -> None:
    color = fancy(stream)
    marks = (
        {"ok": ("✓", "\033[32m"), "problem": ("✗", "\033[31m")}
        if color
        else {"ok": ("OK", ""), "problem": ("FAIL", "")}
    )
    stream.write(report.title + "\n")
    for row in report.rows:
        mark, colour = marks[row["status"]]
        text = f"{mark} {row['reference']}: {row['detail']}"
        stream.write(f"{colour}{text}\033[0m\n" if colour else text + "\n")


def _render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], stream: TextIO) -> None:
    headers = [c.upper().replace("_", " ") for c in columns]
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    for line in aligned([headers, *cells]):
        stream.write(line + "\n")
