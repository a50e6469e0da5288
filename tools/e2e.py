"""`make e2e`: the e2e modules in their two groups at once (tools/harness/fixtures.py, ORDER), each
a pytest process with a cluster of its own, against the one Infisical server, which this starts
before them and stops after them if it started it.

    python tools/e2e.py [--tests DIR] [PYTEST ARGS...]

Each group's lines reach the terminal as they come, marked ``[a]`` or ``[b]``, and whole in
``$FLOE_E2E_ARTIFACTS/group-<g>.log``; each group ends with pytest's own summary. The exit code is
the first group's that failed (0 when both passed). With ``FLOE_E2E_INFISICAL_ENV`` (a server
given elsewhere), or without ../shared, no server is started here: the groups' fixtures then use
the given one, or skip (fail under ``make e2e``) and say what is missing.
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
from typing import IO

from harness.fixtures import ARTIFACTS, ORDER
from harness.localenv import ROOT, SERVER, LocalEnvError, infisical_server

_PRINT = threading.Lock()


def _relay(group: str, stream: IO[str], log: IO[str]) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        with _PRINT:
            sys.stdout.write(f"[{group}] {line}")
            sys.stdout.flush()


def run_groups(tests: Path, pytest_args: list[str]) -> int:
    groups: dict[str, list[str]] = {}
    for module, group in ORDER:
        if (tests / module).exists():
            groups.setdefault(group, []).append(str(tests / module))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    running: list[tuple[str, subprocess.Popen[str], threading.Thread]] = []
    with contextlib.ExitStack() as stack:
        for group, modules in groups.items():
            log = stack.enter_context((ARTIFACTS / f"group-{group}.log").open("w"))
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest", *modules, *pytest_args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
            )
            assert process.stdout is not None
            relay = threading.Thread(target=_relay, args=(group, process.stdout, log), daemon=True)
            relay.start()
            running.append((group, process, relay))
        try:
            for _, process, relay in running:
                process.wait()
                relay.join()
        except KeyboardInterrupt:  # pytest tears its fixtures down (clusters, controllers) on SIGINT
            for _, process, _ in running:
                process.send_signal(signal.SIGINT)
            for _, process, _ in running:
                process.wait()
            return 130
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    for group, process, _ in running:
        print(f"e2e group {group}: pytest exited {process.returncode}")
    print(f"e2e: both groups ended in {minutes} min {seconds} s")
    return next((p.returncode for _, p, _ in running if p.returncode != 0), 0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="make e2e: the e2e modules in two groups at once", allow_abbrev=False)
    parser.add_argument("--tests", type=Path, default=ROOT / "tests" / "e2e", help="the e2e modules' directory")
    args, pytest_args = parser.parse_known_args(argv)
    with contextlib.ExitStack() as stack:
        if not os.environ.get("FLOE_E2E_INFISICAL_ENV") and SERVER.exists():
            try:
                stack.enter_context(infisical_server())
            except LocalEnvError as exc:
                print(f"e2e: {exc}", file=sys.stderr)
                return 1
        return run_groups(args.tests.resolve(), pytest_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
