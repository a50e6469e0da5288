"""``floe secrets upgrade``: move what an earlier release left in a stack's state to what this one
declares, without changing a value.

One move so far: every ``generate:`` value that ``GeneratedPassword`` made (releases before
``random.RandomPassword``) becomes a RandomPassword of the same name, under the same parent, with
the same value, through ``pulumi import`` (the random provider imports a password by its value).
The next ``pulumi up`` then finds each RandomPassword unchanged, writes nothing new into Infisical
or any Secret, and deletes the GeneratedPassword entries (a no-op outside the state). Last, it sets
``floe:passwords random``, which a type k8s stack needs before an ``up``.

Where the values go: this process's memory, and ``pulumi import``'s standard input (no file, no
argument). While the import runs, Pulumi records each value as the import id of a pending
operation in the state it writes (and a Pulumi Cloud backend receives it in that update's
journal); the finished import drops them, and the state write that follows replaces the backup a
file backend keeps. A ``pulumi`` killed mid-import (SIGKILL: Ctrl-C and SIGTERM are passed to it
and waited for) can leave them in the pending operations until the next update clears them.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import FloeError
from ..plan.desired import LEGACY_PASSWORD_TYPE, PASSWORD_TYPE

PLATFORM_TYPE = "floe:secrets:Platform"
RANDOM_PACKAGE = "pulumi-random"


class UpgradeError(FloeError):
    """The state could not be read or moved; says which step failed and what to do."""


@dataclass(frozen=True)
class Move:
    """One GeneratedPassword that becomes a RandomPassword of the same name and value."""

    name: str
    legacy_urn: str
    urn: str  # the RandomPassword's URN, under the platform
    value: str = field(repr=False)


@dataclass(frozen=True)
class UpgradePlan:
    moves: tuple[Move, ...]
    platform_urn: str | None
    done: tuple[str, ...]  # names already moved by an earlier run
    stray: tuple[str, ...]  # URNs of RandomPasswords an `up` made before the upgrade (nothing uses them)
    protected: tuple[str, ...]  # URNs to unprotect: every RandomPassword, every GeneratedPassword

    def import_file(self, random_version: str) -> dict[str, Any]:
        """``pulumi import --file``: each password by its value, under the platform."""
        return {
            "nameTable": {"platform": self.platform_urn},
            "resources": [
                {"type": PASSWORD_TYPE, "name": m.name, "id": m.value, "parent": "platform", "version": random_version}
                for m in self.moves
            ],
        }

    def unprotect(self, imported: bool = True) -> list[str]:
        """What to unprotect after the import (which protects what it imports): every RandomPassword
        (the program never protects one: it is state only) and every GeneratedPassword (the next
        `up` deletes them), those of an earlier, interrupted run included. Never empty when there is
        a move, so the state is written once more after the import (``imported`` False: it failed,
        and made no RandomPassword)."""
        made = (m.urn for m in self.moves) if imported else ()
        return sorted({*self.protected, *made, *(m.legacy_urn for m in self.moves)})


def _plaintext(value: Any) -> Any:
    """An output of ``pulumi stack export --show-secrets``: a secret is ``{<sig>, "plaintext": <JSON>}``."""
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def _urn_of_child(parent_urn: str, kind: str, name: str) -> str:
    """The URN Pulumi gives a child of ``parent_urn``: the parent's type chain, then ``kind``."""
    head, parent_type, _parent_name = parent_urn.rsplit("::", 2)
    return f"{head}::{parent_type}${kind}::{name}"


def plan_upgrade(deployment: Mapping[str, Any], stack: str) -> UpgradePlan:
    """The moves a stack needs, from its exported deployment (secrets shown)."""
    # Entries pending deletion (a replace that was interrupted) are not the stack's values.
    resources: list[Mapping[str, Any]] = [r for r in deployment.get("resources") or [] if not r.get("delete")]
    platforms = [r["urn"] for r in resources if r.get("type") == PLATFORM_TYPE]
    passwords = {r["urn"]: r for r in resources if r.get("type") == PASSWORD_TYPE}
    used = {
        u
        for r in resources
        for u in (
            *(r.get("dependencies") or []),
            *(d for ds in (r.get("propertyDependencies") or {}).values() for d in ds),
        )
    }
    moves, done, stray = [], [], []
    kinds = (PASSWORD_TYPE, LEGACY_PASSWORD_TYPE)
    protected = [r["urn"] for r in resources if r.get("protect") and r.get("type") in kinds]
    for resource in resources:
        if resource.get("type") != LEGACY_PASSWORD_TYPE:
            continue
        if len(platforms) != 1:
            raise UpgradeError(
                f"the state holds {len(platforms)} {PLATFORM_TYPE} resources, not one: this stack was not made by "
                f"floe-infra's program (or is mid-way through a failed update: run `pulumi up` with the release "
                f"that made it first)"
            )
        legacy_urn = str(resource["urn"])
        name = legacy_urn.rsplit("::", 1)[1]
        urn = _urn_of_child(platforms[0], PASSWORD_TYPE, name)
        value = _plaintext((resource.get("outputs") or {}).get("result"))
        if not isinstance(value, str) or not value or value == "[secret]":
            raise UpgradeError(
                f"the GeneratedPassword {name} shows no value in `pulumi stack export --show-secrets` (a state "
                f"edited by hand?): its value is the one Infisical or the Secret holds; set it as the key's value "
                f"with a rotation instead (README: Generated values)"
            )
        existing = passwords.get(urn)
        if existing is not None:
            if _plaintext((existing.get("outputs") or {}).get("result")) == value:
                done.append(name)
                continue
            if (existing.get("inputs") or {}).get("keepers") or urn in used:
                # A rotation after an upgrade, or a value written into a Secret (type k8s): live.
                raise UpgradeError(
                    f"the RandomPassword {name} holds another value than its GeneratedPassword, and it is in use "
                    f"(a rotation, or a value an `up` wrote): its value is the live one, so nothing is moved; "
                    f"finish with `pulumi up --stack {stack}`, which deletes the GeneratedPassword"
                )
            stray.append(urn)
        moves.append(Move(name, legacy_urn, urn, value))
    return UpgradePlan(tuple(moves), platforms[0] if platforms else None, tuple(done), tuple(stray), tuple(protected))


def redact(text: str, values: Iterable[str]) -> str:
    """``text`` with every value, and its JSON-escaped form, replaced (the longest first)."""
    for value in sorted(values, key=len, reverse=True):
        for form in dict.fromkeys((value, json.dumps(value)[1:-1])):
            text = text.replace(form, "[secret]")
    return text


class _Pulumi:
    """The pulumi CLI for one stack, in the project directory, with the user's environment.
    A Ctrl-C or SIGTERM reaches pulumi (as SIGINT) and is waited for: pulumi then ends its update
    and writes its state, rather than being killed mid-write."""

    def __init__(self, project_dir: Path, stack: str) -> None:
        found = shutil.which("pulumi")
        if found is None:
            raise UpgradeError("the pulumi CLI is not on PATH: install it (see the README's prerequisites)")
        self.binary, self.project_dir, self.stack = found, project_dir, stack
        self.values: list[str] = []

    def __call__(self, what: str, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.Popen(
            [self.binary, *args, "--stack", self.stack, "--non-interactive"],
            cwd=self.project_dir,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

        def forward(signum: int, _frame: FrameType | None) -> None:
            proc.send_signal(signal.SIGINT)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            out, err = proc.communicate(stdin)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if proc.returncode != 0:
            said = redact((err or out).strip(), self.values)[-2000:]
            raise UpgradeError(f"{what} failed (pulumi exited {proc.returncode}): {said}")
        return out


def export(pulumi: _Pulumi) -> Mapping[str, Any]:
    raw = pulumi("reading the state (`pulumi stack export --show-secrets`)", "stack", "export", "--show-secrets")
    try:
        deployment = json.loads(raw)["deployment"]
    except (ValueError, KeyError, TypeError):
        raise UpgradeError("`pulumi stack export` printed no deployment: is this the project directory?") from None
    return dict(deployment)


@dataclass(frozen=True)
class UpgradeReport:
    moved: tuple[str, ...]
    already: tuple[str, ...]


def upgrade(project_dir: Path, stack: str) -> UpgradeReport:
    """Move every GeneratedPassword of ``stack`` into a RandomPassword with its value."""
    pulumi = _Pulumi(project_dir, stack)
    plan = plan_upgrade(export(pulumi), stack)
    pulumi.values = [m.value for m in plan.moves]
    imported = False
    try:
        if plan.stray:
            # RandomPasswords that an `up` made before this upgrade, which the stack refused to write
            # anywhere (nothing depends on them): the import replaces them.
            pulumi(
                "removing RandomPasswords made before the upgrade", "state", "delete", "--force", "--yes", *plan.stray
            )
        if plan.moves:
            pulumi(
                "importing the values into RandomPasswords (`pulumi import`)",
                "import",
                "--file",
                "/dev/stdin",
                "--yes",
                "--skip-preview",
                "--generate-code=false",
                "--protect=true",
                "--suppress-outputs",
                stdin=json.dumps(plan.import_file(version(RANDOM_PACKAGE))),
            )
        imported = True
    finally:
        # Also after a failed import: the state is written once more, so the backup a file backend
        # keeps of the import's last state (its pending operations) is replaced.
        if plan.unprotect(imported):
            try:
                pulumi(
                    "unprotecting the passwords (`pulumi state unprotect`)",
                    "state",
                    "unprotect",
                    "--yes",
                    *plan.unprotect(imported),
                )
            except UpgradeError:
                if imported:
                    raise  # else the import's own error is the one to show
    after = plan_upgrade(export(pulumi), stack)
    if after.moves:
        raise UpgradeError(
            f"after the import, {len(after.moves)} RandomPassword(s) still do not hold their GeneratedPassword's "
            f"value ({', '.join(m.name for m in after.moves)}): run `floe secrets upgrade --stack {stack}` again"
        )
    pulumi(
        "recording the upgrade (`pulumi config set floe:passwords random`)", "config", "set", "floe:passwords", "random"
    )
    return UpgradeReport(tuple(m.name for m in plan.moves), plan.done)
