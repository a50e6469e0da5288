"""Exception types of floe-infra.

Every way bad input can stop the program or the CLI is one of these, so entry points can print the
message and exit non-zero without a traceback. Messages name the file, the field and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence


class FloeError(Exception):
    """Base class: an error the user can fix; its message is complete and safe to print."""


class ManifestError(FloeError):
    """manifest.yaml is missing, unreadable or breaks a rule; carries one line per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} {noun}:\n{lines}")


class StackConfigError(FloeError):
    """Stack configuration (Pulumi.<stack>.yaml or pulumi config) is missing or invalid."""


class PluginError(FloeError):
    """A backend (a cluster, Infisical) could not be reached or refused; one line that says what to do."""
