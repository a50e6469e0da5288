"""How the Pulumi program scales with the number of secret references, under Pulumi's mocks.

For 10, 100 and 1000 references it evaluates the real program (manifest parse, plan, components)
and, in the same run, the floor: the same number of bare ``pulumi.CustomResource``s, one per
registration the program made and carrying the same inputs, registered flat under the same mocks.
The floor is what the engine costs whatever the program does; the ratio is the program's own
overhead (manifest, plan, components, dependencies). Target: at most 1.2x the floor at 1000.

Times are process CPU seconds (the mocks' RPC threads included), which a busy shared machine
disturbs less than wall time, each after a full garbage collection so no run pays for the last one's
garbage. The last column repeats the comparison with the SDK's per-registration source-position
capture switched off in both arms: the SDK records every stack frame below a resource class's
``__init__``, and a bare ``CustomResource`` has no such ``__init__``, so the floor never pays it.
That column is the program's own overhead; the gap between the two is the SDK's.

    .venv/bin/python bench/program_scale.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import settings
from pulumi.runtime.proto import source_pb2

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

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return {}, []  # the chart renders nothing here; failures as a list (None crashes the SDK)


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
    gc.collect()  # garbage left by the previous run is not this run's cost
    start = time.process_time()
    pulumi.runtime.test(body)()  # type: ignore[no-untyped-call]
    return time.process_time() - start, mocks.registered


def program() -> Any:
    from floe_infra.deploy.program import run

    return run().urn


def floor(registered: Registered) -> Callable[[], Any]:
    def body() -> Any:
        resources = [pulumi.CustomResource(typ, name, props) for typ, name, props in registered]
        return pulumi.Output.all(*[r.urn for r in resources])

    return body


@contextmanager
def source_positions_off() -> Iterator[None]:
    """Make the SDK record no stack frames, as it already does for the floor's bare resources."""
    original = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original


def compare(registered: Registered, root: Path, repeat: int) -> tuple[float, float, float]:
    """Median program and floor seconds and median ratio, alternating the two so drift hits both."""
    pairs = [(evaluate(program, root)[0], evaluate(floor(registered), root)[0]) for _ in range(repeat)]
    return (
        statistics.median(p for p, _ in pairs),
        statistics.median(f for _, f in pairs),
        statistics.median(p / f for p, f in pairs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size; the median counts (default: 5)")
    args = parser.parse_args()
    print(f"{'refs':>6} {'resources':>10} {'program s':>10} {'floor s':>9} {'ratio':>6} {'ratio, no source pos':>21}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in (10, 100, 1000):
            (root / "manifest.yaml").write_text(HEAD + "".join(f"  ref-{i:04d}: {{}}\n" for i in range(n)))
            registered = evaluate(program, root)[1]
            p, f, ratio = compare(registered, root, args.repeat)
            with source_positions_off():
                own = compare(registered, root, args.repeat)[2]
            print(f"{n:>6} {len(registered):>10} {p:>10.3f} {f:>9.3f} {ratio:>6.2f} {own:>21.2f}")


if __name__ == "__main__":
    main()
