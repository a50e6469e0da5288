"""Rendering a StackPlan for people (table), machines (JSON) and review (YAML files).

Nothing here can print a secret value: the plan does not hold any, only placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import FloeError
from .desired import PASSWORD_TYPE, ChartCrds, HelmRelease, InfisicalValue, KubeObject, ManagedIdentity, StackPlan
from .vocabulary import read_scope


@dataclass(frozen=True)
class Row:
    """One resource of the plan, as ``pulumi preview`` would list it."""

    type: str
    name: str
    namespace: str
    detail: str


def rows(plan: StackPlan) -> list[Row]:
    out: list[Row] = []
    for r in plan.resources():
        if isinstance(r, HelmRelease):
            out.append(Row(r.pulumi_type, r.name, r.namespace, f"chart {r.chart} {r.version} from {r.repo}"))
            continue
        if isinstance(r, ChartCrds):
            detail = f"the CRDs of chart {r.chart} {r.version}, one resource each, kept on delete"
            out.append(Row(r.pulumi_type, r.logical_name, "", detail))
            continue
        if isinstance(r, ManagedIdentity):
            login = r.kubernetes
            auth = (
                f"Kubernetes Auth for ServiceAccount {login.namespace}/{login.service_account}"
                if login
                else "Universal Auth"
            )
            role = "viewer (the whole project)"
            if r.role == "scoped":
                role = f"role {r.role_slug}-<nonce>"
                out.append(
                    Row(
                        r.role_type,
                        r.logical_name,
                        "",
                        f"role {r.role_slug}-<nonce>: reads secrets of environment {r.environment} in "
                        f"{', '.join(r.paths)} only",
                    )
                )
            ttls = f"tokens live {r.token_ttl}s (at most {r.token_max_ttl}s)"
            out.append(
                Row(
                    r.pulumi_type,
                    r.logical_name,
                    "",
                    f"identity {r.name}-<nonce> in Infisical, project {r.project_slug} as {role}, {auth}, {ttls}",
                )
            )
            if login is None:
                out += [
                    Row(
                        r.client_secret_type,
                        r.logical_name,
                        "",
                        f"its client secret (rotation {r.rotation or 'none yet'}; a new rotation makes a new one)",
                    ),
                    Row(
                        r.login_type,
                        r.logical_name,
                        "",
                        "on a rotation, waits for the operator's login with the new client secret, then revokes the "
                        "old",
                    ),
                ]
            continue
        for name, source in r.generated().items():
            out.append(Row(PASSWORD_TYPE, name, "", source.placeholder))
        if isinstance(r, InfisicalValue):
            where = f"{r.project_slug}/{r.environment}{r.path} {r.key} = {r.source.placeholder}"
            out.append(Row(r.pulumi_type, r.logical_name, "", where + (" (adopt)" if r.adopt else "")))
            continue
        detail = _detail(r)
        out.append(Row(r.pulumi_type, r.name, r.namespace or "", detail))
    return out


def _detail(obj: KubeObject) -> str:
    """Where a sync object reads from (project/environment/path), or which keys a Secret holds."""
    spec = obj.content.get("spec", {})
    scope = read_scope(obj.kind, spec)
    if scope is not None:
        return f"{scope.project}/{scope.environment}{scope.path}"
    if obj.kind == "ExternalSecret":
        return f"Secret {spec['target']['name']} from store {spec['secretStoreRef']['name']}"
    return "keys " + ", ".join(obj.secret_data) if obj.secret_data else ""


def aligned(lines: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as text columns two spaces apart (the last column ragged); the one table
    layout of every command."""
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]


def component_count(plan: StackPlan) -> int:
    return 1 + (1 if plan.operator else 0)


def table(plan: StackPlan) -> str:
    body = rows(plan)
    header = Row("TYPE", "NAME", "NAMESPACE", "DETAIL")
    exempt = [
        what
        for what, present in [
            ("the operator's login material", plan.operator is not None),
            ("generated passwords", any(s.generate is not None for s in plan.secret_sources())),
        ]
        if present
    ]
    but = f" but {' and '.join(exempt)}" if exempt else ""
    protected = f", every resource protected{but}" if plan.settings.protect else ""
    lines = [
        f"Stack {plan.settings.stack}: "
        + (f"Infisical environment {plan.settings.environment}, " if plan.secrets_type == "infisical" else "")
        + f"secrets type {plan.secrets_type}{protected}",
        "",
    ]
    lines += aligned([(r.type, r.name, r.namespace, r.detail) for r in [header, *body]])
    components = component_count(plan)
    crds = ", and the chart's CRDs" if plan.operator else ""
    lines += [
        "",
        f"{len(body)} resources, in {components} components ({len(body) + components + 2} to create in "
        f"`pulumi preview`, counting the stack and the cluster provider{crds})",
    ]
    return "\n".join(lines) + "\n"


def as_json(plan: StackPlan, warnings: Sequence[str]) -> str:
    doc: dict[str, Any] = {
        "stack": plan.settings.stack,
        "environment": plan.settings.environment,
        "secretsType": plan.secrets_type,
        "protect": plan.settings.protect,
        "resources": [r.__dict__ for r in rows(plan)],
        "components": component_count(plan),
        "objects": [o.manifest() for o in plan.kube_objects()],
        "outputs": {"secrets": plan.outputs()},
        "warnings": list(warnings),
    }
    return json.dumps(doc, indent=2) + "\n"


WRITTEN_BY = "# Written by `floe secrets plan --out`: the next run deletes or rewrites this file.\n"
PLACEHOLDER_SUFFIX = ".placeholder"
"""A Secret's values are placeholders: ``NNN-secret-....yaml.placeholder`` is a file `kubectl apply -f
DIR` skips (it reads .yaml, .yml and .json), so nobody overwrites a real Secret by mistake."""


def write_objects(plan: StackPlan, out_dir: Path) -> list[Path]:
    """Write each Kubernetes object as YAML, numbered in apply order, so that ``out_dir`` holds
    exactly this plan: files an earlier run wrote go first; a file floe did not write stops it
    before anything changes. Returns the files."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        earlier: list[Path] = []
        foreign: list[Path] = []
        for entry in sorted(out_dir.iterdir()):
            (earlier if entry.is_file() and _written_by_floe(entry) else foreign).append(entry)
        if foreign:
            raise FloeError(
                f"{out_dir}: holds {foreign[0].name}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, "
                "which floe did not write: use a directory of floe's own (or an empty one), or move them"
            )
        for entry in earlier:
            entry.unlink()
        written = []
        for i, obj in enumerate(plan.kube_objects(), start=1):
            parts = [f"{i:03d}", obj.kind.lower(), *([obj.namespace] if obj.namespace else []), obj.name]
            path = out_dir / ("-".join(parts) + ".yaml" + (PLACEHOLDER_SUFFIX if obj.secret_data else ""))
            header = WRITTEN_BY + ("# Placeholder values: never apply this file.\n" if obj.secret_data else "")
            path.write_text(header + yaml.safe_dump(obj.manifest(), sort_keys=False), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise FloeError(f"{out_dir}: cannot write the rendered objects: {exc.strerror or exc}") from exc
    return written


def _written_by_floe(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as f:
        return f.readline() == WRITTEN_BY
