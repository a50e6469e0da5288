"""``floe secrets upgrade``: move what an earlier release left in a stack's state to what this one
declares, without changing a value.

One move so far: every ``generate:`` value that ``GeneratedPassword`` made (releases before
``random.RandomPassword``) becomes a RandomPassword of the same name, under the same parent, with
the same value, through ``pulumi import`` (the random provider imports a password by its value).
The next ``pulumi up`` then finds each RandomPassword unchanged, writes nothing new into Infisical
or any Secret, and deletes the GeneratedPassword entries (a no-op outside the state).

The values pass through this process's memory and an import file in a private temporary folder
(mode 0600, removed afterwards), never through arguments, output or logs. ``pulumi import`` records
each value as a pending operation's import id while it runs; a successful import drops it, and the
state write that follows (unprotecting what the import protected) replaces the
backup the backend keeps of the state before it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
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
    legacy_protected: bool
    urn: str  # the RandomPassword's URN, under the platform
    value: str


@dataclass(frozen=True)
class UpgradePlan:
    moves: tuple[Move, ...]
    platform_urn: str | None
    done: tuple[str, ...]  # names already moved by an earlier run
    stray: tuple[str, ...]  # URNs of RandomPasswords with another value (an `up` before the upgrade)

    def import_file(self, random_version: str) -> dict[str, Any]:
        """``pulumi import --file``: each password by its value, under the platform."""
        return {
            "nameTable": {"platform": self.platform_urn},
            "resources": [
                {"type": PASSWORD_TYPE, "name": m.name, "id": m.value, "parent": "platform", "version": random_version}
                for m in self.moves
            ],
        }

    def unprotect(self) -> list[str]:
        """What to unprotect after the import (which protects what it imports): each RandomPassword
        (the program never protects one: it is state only) and each protected GeneratedPassword
        (the next `up` deletes it). This also writes the state once more after the import."""
        return [*(m.legacy_urn for m in self.moves if m.legacy_protected), *(m.urn for m in self.moves)]


def _plaintext(value: Any) -> Any:
    """An output of ``pulumi stack export --show-secrets``: a secret is ``{<sig>, "plaintext": <JSON>}``."""
    if isinstance(value, dict) and "plaintext" in value:
        return json.loads(value["plaintext"])
    return value


def plan_upgrade(deployment: Mapping[str, Any]) -> UpgradePlan:
    """The moves a stack needs, from its exported deployment (secrets shown)."""
    resources: list[Mapping[str, Any]] = list(deployment.get("resources") or [])
    platforms = [r["urn"] for r in resources if r.get("type") == PLATFORM_TYPE]
    passwords = {r["urn"]: _plaintext((r.get("outputs") or {}).get("result")) for r in resources
                 if r.get("type") == PASSWORD_TYPE}
    moves, done, stray = [], [], []
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
        if not isinstance(value, str) or not value:
            raise UpgradeError(
                f"the GeneratedPassword {name} holds no value in the state (was it exported without "
                f"--show-secrets, or made by a failed create?): run `pulumi refresh` and try again"
            )
        if urn in passwords:
            if passwords[urn] == value:
                done.append(name)
                continue
            stray.append(urn)
        moves.append(Move(name, legacy_urn, bool(resource.get("protect")), urn, value))
    return UpgradePlan(tuple(moves), platforms[0] if platforms else None, tuple(done), tuple(stray))


def _urn_of_child(parent_urn: str, kind: str, name: str) -> str:
    """The URN Pulumi gives a child of ``parent_urn``: the parent's type chain, then ``kind``."""
    head, parent_type, _parent_name = parent_urn.rsplit("::", 2)
    return f"{head}::{parent_type}${kind}::{name}"


def redact(text: str, values: Iterable[str]) -> str:
    for value in values:
        text = text.replace(value, "[secret]")
    return text


class _Pulumi:
    """The pulumi CLI for one stack, in the project directory, with the user's environment."""

    def __init__(self, project_dir: Path, stack: str, values: Sequence[str] = ()) -> None:
        found = shutil.which("pulumi")
        if found is None:
            raise UpgradeError("the pulumi CLI is not on PATH: install it (see the README's prerequisites)")
        self.binary, self.project_dir, self.stack, self.values = found, project_dir, stack, list(values)

    def __call__(self, what: str, *args: str) -> str:
        result = subprocess.run(
            [self.binary, *args, "--stack", self.stack, "--non-interactive"],
            cwd=self.project_dir, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            said = redact((result.stderr or result.stdout).strip(), self.values)[-2000:]
            raise UpgradeError(f"{what} failed (pulumi exited {result.returncode}): {said}")
        return result.stdout


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
    plan = plan_upgrade(export(pulumi))
    if not plan.moves:
        return UpgradeReport((), plan.done)
    pulumi.values = [m.value for m in plan.moves]
    if plan.stray:
        # RandomPasswords that an `up` made before this upgrade (the program refused to write their
        # values into Infisical): they hold no value anyone reads; the import replaces them.
        pulumi("removing RandomPasswords made before the upgrade", "state", "delete", "--force", "--yes",
               *plan.stray)
    with tempfile.TemporaryDirectory(prefix="floe-upgrade-") as private:
        path = Path(private) / "import.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(plan.import_file(version(RANDOM_PACKAGE)), out)
        pulumi("importing the values into RandomPasswords (`pulumi import`)", "import", "--file", str(path),
               "--yes", "--skip-preview", "--generate-code=false", "--protect=true", "--suppress-outputs")
    pulumi("carrying protection over (`pulumi state unprotect`)", "state", "unprotect", "--yes", *plan.unprotect())
    after = plan_upgrade(export(pulumi))
    missing = sorted(m.name for m in after.moves)
    if missing:
        raise UpgradeError(
            f"after the import, {len(missing)} RandomPassword(s) still do not hold their GeneratedPassword's value "
            f"({', '.join(missing)}): run `floe secrets upgrade --stack {stack}` again"
        )
    return UpgradeReport(tuple(m.name for m in plan.moves), plan.done)
