"""Map a deploy job's environment secrets into its stack's config, encrypted, never printed.

    python .github/scripts/stack_secrets.py STACK

FLOE_OPERATOR_CLIENT_ID / FLOE_OPERATOR_CLIENT_SECRET become floe:operatorClientId/Secret;
FLOE_SECRET_VALUES (JSON {reference: {KEY: value}}) becomes floe:secretValues.<reference>.<KEY>.
Each value reaches `pulumi config set --secret` on standard input, never on a command line. An
unset variable is skipped: the program then names the setting it lacks and stops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def settings(env: dict[str, str]) -> list[tuple[str, bool, str]]:
    """(key, is a path, value) for every value the environment provides."""
    out = [
        (f"floe:{key}", False, env[var])
        for var, key in (("FLOE_OPERATOR_CLIENT_ID", "operatorClientId"),
                         ("FLOE_OPERATOR_CLIENT_SECRET", "operatorClientSecret"))
        if env.get(var)
    ]
    raw = env.get("FLOE_SECRET_VALUES")
    if raw:
        try:
            values = json.loads(raw)
        except json.JSONDecodeError:
            raise SystemExit("FLOE_SECRET_VALUES is not JSON: write {\"reference\": {\"KEY\": \"value\"}}") from None
        if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
            raise SystemExit("FLOE_SECRET_VALUES must be a JSON object {\"reference\": {\"KEY\": \"value\"}}")
        out += [
            (f"floe:secretValues.{ref}.{key}", True, str(v)) for ref, keys in values.items() for key, v in keys.items()
        ]
    return out


def main(argv: list[str]) -> int:
    (stack,) = argv
    for key, path, value in settings(dict(os.environ)):
        command = ["pulumi", "config", "set", "--secret", *(["--path"] if path else []), "--stack", stack, key]
        subprocess.run(command, input=value, text=True, check=True, stdout=subprocess.DEVNULL)
        print(f"set {key} (secret)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
