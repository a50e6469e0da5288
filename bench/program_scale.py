"""How the Pulumi program scales with the number of secret references, under Pulumi's mocks.

For 10, 100 and 1000 references it evaluates the real program (manifest parse, plan, components)
and, in the same run, the floor: the same number of bare ``pulumi.CustomResource``s, one per
registration the program made and carrying the same inputs, registered flat under the same mocks.
The floor is what the engine costs whatever the program does; the ratio is the program's own
overhead (manifest, plan, components, dependencies). Target: at most 1.2x the floor at 1000.

    .venv/bin/python bench/program_scale.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings

HEAD = """\
plugins:
  secrets:
    type: infisical
    config:
      site_url: https://infisical.company.com
      project_slug: floe-platform
secrets:
"""


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append((args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


Registered = list[tuple[str, str, dict[str, Any]]]


def evaluate(body: Callable[[], Any], root: Path) -> tuple[float, Registered]:
    """Run ``body`` as a Pulumi program under fresh mocks; returns (seconds, what it registered)."""
    mocks = RecordingMocks()
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="floe", stack="dev", preview=False)
    settings.SETTINGS.root_directory = str(root)
    pulumi.runtime.set_all_config(
        {"floe:environment": "dev", "floe:operatorClientId": "id", "floe:operatorClientSecret": "secret"},
        ["floe:operatorClientId", "floe:operatorClientSecret"],
    )
    start = time.perf_counter()
    pulumi.runtime.test(body)()
    return time.perf_counter() - start, mocks.registered


def program() -> Any:
    from floe_infra.program import run

    return run().urn


def floor(registered: Registered) -> Callable[[], Any]:
    def body() -> Any:
        resources = [pulumi.CustomResource(typ, name, props) for typ, name, props in registered]
        return pulumi.Output.all(*[r.urn for r in resources])

    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'refs':>6} {'resources':>10} {'program s':>10} {'floor s':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (10, 100, 1000):
            (root / "manifest.yaml").write_text(HEAD + "".join(f"  ref-{i:04d}: {{}}\n" for i in range(n)))
            registered = evaluate(program, root)[1]
            # Alternate program and floor so machine load drifts over both alike; report medians.
            pairs = [(evaluate(program, root)[0], evaluate(floor(registered), root)[0]) for _ in range(args.repeat)]
            p = statistics.median(t for t, _ in pairs)
            f = statistics.median(t for _, t in pairs)
            ratio = statistics.median(a / b for a, b in pairs)
            print(f"{n:>6} {len(registered):>10} {p:>10.3f} {f:>9.3f} {ratio:>6.2f}")


if __name__ == "__main__":
    main()
