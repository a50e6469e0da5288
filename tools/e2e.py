"""`make e2e`: the e2e modules in their two groups at once (tools/harness/fixtures.py, ORDER), each
a pytest process with a cluster of its own, against the one Infisical server, which this starts
before them and stops after them if it started it.

    python tools/e2e.py [--tests DIR] [--timeout MINUTES] [PYTEST ARGS...]

A module's path or node id among the pytest args goes to its group only, and a group that is given
none of its modules does not run; without any, each group runs all of its modules. Each group's
lines reach the terminal as they come, marked ``[a]`` or ``[b]``, and whole in
``$FLOE_E2E_ARTIFACTS/group-<g>.log``. The exit code is the first failed group's in ORDER (a group
that selected no test, pytest's 5, fails only if both did); 0 when both passed. Ctrl-C or SIGTERM,
or a run past its timeout, interrupts both groups once (pytest then tears down their clusters and
stacks) and kills what is left 3 minutes later. With ``FLOE_E2E_INFISICAL_ENV`` (a server given
elsewhere), or without ../shared, no server is started here: the groups' fixtures then use the
given one, or skip (fail under ``make e2e``) and say what is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

from harness.fixtures import ARTIFACTS, ORDER
from harness.localenv import ROOT, SERVER, LocalEnvError, infisical_server

NO_TESTS = 5  # pytest's exit code when it selected no test
GRACE = 180.0  # seconds between the interrupt and the kill

_PRINT = threading.Lock()


def _relay(group: str, stream: IO[str], log: IO[str]) -> None:
    """Every line of a group to its log, and marked to the terminal while the terminal takes them
    (a closed pipe or a hung-up terminal stops only that: the group is still drained)."""
    terminal = True
    for line in stream:
        log.write(line)
        log.flush()
        if terminal:
            try:
                with _PRINT:
                    sys.stdout.write(f"[{group}] {line}")
                    sys.stdout.flush()
            except (OSError, ValueError):
                terminal = False


def group_args(tests: Path, pytest_args: list[str]) -> dict[str, list[str]]:
    """Each group's pytest arguments: its modules (or those of its modules the args name), then the
    args that name no module."""
    group_of = dict(ORDER)
    named: dict[str, list[str]] = {}
    rest: list[str] = []
    for arg in pytest_args:
        module, sep, test = arg.partition("::")
        name = Path(module).name
        if name.endswith(".py") and name in group_of and (tests / name).exists():
            named.setdefault(group_of[name], []).append(f"{tests / name}{sep}{test}")
        else:
            rest.append(arg)
    if named:
        return {group: [*args, *rest] for group, args in named.items()}
    groups: dict[str, list[str]] = {}
    for module, group in ORDER:
        if (tests / module).exists():
            groups.setdefault(group, []).append(str(tests / module))
    return {group: [*modules, *rest] for group, modules in groups.items()}


def exit_code(codes: list[int]) -> int:
    failed = [128 - c if c < 0 else c for c in codes if c not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return NO_TESTS if codes and all(c == NO_TESTS for c in codes) else 0


def run_groups(tests: Path, pytest_args: list[str], timeout: float) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stopping: list[str] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    running: list[tuple[str, subprocess.Popen[str], threading.Thread]] = []
    interrupted_at: float | None = None
    timed_out = False
    with contextlib.ExitStack() as stack:
        for group, args in group_args(tests, pytest_args).items():
            log = stack.enter_context((ARTIFACTS / f"group-{group}.log").open("w"))
            # A session of its own: the terminal's Ctrl-C reaches this process only, which passes
            # one interrupt on (a second one could land in a fixture's teardown and cut it short).
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
                start_new_session=True,
            )
            assert process.stdout is not None
            relay = threading.Thread(target=_relay, args=(group, process.stdout, log), daemon=True)
            relay.start()
            running.append((group, process, relay))
        while any(process.poll() is None for _, process, _ in running):
            now = time.monotonic()
            if interrupted_at is None and (stopping or now - started > timeout):
                timed_out = not stopping
                why = stopping[0] if stopping else f"the run passed its {timeout / 60:.0f} minutes"
                print(f"e2e: {why}: interrupting both groups (they tear down what they started)", flush=True)
                for _, process, _ in running:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGINT)
                interrupted_at = now
            if interrupted_at is not None and now - interrupted_at > GRACE:
                for _, process, _ in running:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.2)
        for _, _, relay in running:
            relay.join()
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    for group, process, _ in running:
        print(f"e2e group {group}: pytest exited {process.returncode}")
    print(f"e2e: the groups ended in {minutes} min {seconds} s")
    if timed_out:
        return exit_code([p.returncode for _, p, _ in running]) or 1
    return 130 if interrupted_at is not None else exit_code([p.returncode for _, p, _ in running])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="make e2e: the e2e modules in two groups at once; other args go to pytest",
        allow_abbrev=False,
    )
    parser.add_argument("--tests", type=Path, default=ROOT / "tests" / "e2e", help="the e2e modules' directory")
    parser.add_argument("--timeout", type=float, default=45, help="minutes before both groups are interrupted")
    args, pytest_args = parser.parse_known_args(argv)
    try:
        with contextlib.ExitStack() as stack:
            if not os.environ.get("FLOE_E2E_INFISICAL_ENV") and SERVER.exists():
                try:
                    stack.enter_context(infisical_server())
                except LocalEnvError as exc:
                    print(f"e2e: {exc}", file=sys.stderr)
                    return 1
            return run_groups(args.tests.resolve(), pytest_args, args.timeout * 60)
    except KeyboardInterrupt:  # while the server starts or stops
        print("e2e: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
