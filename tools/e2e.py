"""`make e2e`: the e2e modules in their two groups at once (tools/harness/fixtures.py, ORDER), each
a pytest process with a cluster of its own, against the one Infisical server, which this starts
before them and stops after them if it started it.

    python tools/e2e.py [--tests DIR] [--timeout MINUTES] [--module NAME[::TEST] ...] [PYTEST ARGS...]

``--module`` runs only the modules (or steps) it names, each in its group; a group given none
does not run. The other args go to both groups' pytest, which must not name paths (they would run
in both groups) nor files both would write (``--basetemp``, ``--junitxml``, ...): those are
refused, with exit code 2. Each group's lines reach the terminal as they come, marked ``[a]`` or
``[b]``, and whole in ``$FLOE_E2E_ARTIFACTS/group-<g>.log``. The exit code is the first failed
group's in ORDER (a group that selected no test, pytest's 5, fails only if both did); 0 when both
passed. Ctrl-C or SIGTERM, or a run past its timeout, interrupts each group once (pytest then
tears down the clusters and stacks its fixtures started); a group still running 3 minutes later
is killed, and what its fixtures started may then be left (the message says so). With
``FLOE_E2E_INFISICAL_ENV`` (a server given elsewhere), or without ../shared, no server is started
here: the groups' fixtures then use the given one, or skip (fail under ``make e2e``) and say what
is missing.
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
# pytest options whose files the two groups' processes would write over each other's
PER_PROCESS = ("--basetemp", "--junitxml", "--junit-xml", "--report-log", "--resultlog", "--result-log")

_PRINT = threading.Lock()


class UsageError(ValueError):
    pass


def _say(text: str, end: str = "\n") -> None:
    """A line to the terminal, whole; a terminal gone (a closed pipe, a hang-up) does not stop the
    run."""
    with _PRINT:
        try:
            print(text, end=end, flush=True)
        except (OSError, ValueError):
            _terminal_gone()


def _terminal_gone() -> None:
    """Standard output to /dev/null from now on: the lines still written, and the interpreter's
    last flush, go nowhere instead of failing (they are in the groups' logs)."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _relay(group: str, stream: IO[str], log: IO[str]) -> None:
    """Every line of a group to its log, and marked to the terminal while the terminal takes them:
    the group's output is drained to its end whatever happens to the terminal."""
    for line in stream:
        log.write(line)
        log.flush()
        _say(f"[{group}] {line}", end="")


def group_args(tests: Path, modules: list[str], pytest_args: list[str]) -> dict[str, list[str]]:
    """Each group's pytest arguments, groups in ORDER: its modules (those ``modules`` names, if it
    names any), then ``pytest_args``."""
    group_of = dict(ORDER)
    for arg in pytest_args:
        if arg.startswith(PER_PROCESS):
            raise UsageError(f"{arg.split('=')[0]}: both groups would write it; run pytest on one module for it")
        if not arg.startswith("-") and Path(arg.partition("::")[0]).exists():
            raise UsageError(f"{arg}: a path would run in both groups; name modules with --module (test_sync.py)")
    named: dict[str, list[str]] = {}
    for module in modules:
        name, sep, test = module.partition("::")
        if name not in group_of:
            raise UsageError(f"--module {module}: not an e2e module (tools/harness/fixtures.py, ORDER)")
        named.setdefault(group_of[name], []).append(f"{tests / name}{sep}{test}")
    groups: dict[str, list[str]] = {}
    for name, group in ORDER:
        if named:
            if group in named:
                groups[group] = named[group]
        elif (tests / name).exists():
            groups.setdefault(group, []).append(str(tests / name))
    if not groups:
        raise UsageError(f"no e2e module of ORDER (tools/harness/fixtures.py) in {tests}")
    return {group: [*selected, *pytest_args] for group, selected in groups.items()}


def failures(log: str) -> list[str]:
    """The FAILED and ERROR lines of a group's last short test summary (pytest's ``-r fE``,
    its default): repeated after both groups have ended, where a CI log's tail shows them."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if "short test summary info" in line]
    if not starts:
        return []
    return [line for line in lines[starts[-1] + 1 :] if line.startswith(("FAILED ", "ERROR "))]


def exit_code(codes: list[int]) -> int:
    failed = [128 - c if c < 0 else c for c in codes if c not in (0, NO_TESTS)]
    if failed:
        return failed[0]
    return NO_TESTS if codes and all(c == NO_TESTS for c in codes) else 0


def run_groups(groups: dict[str, list[str]], timeout: float) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stopping: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    running: list[tuple[str, subprocess.Popen[str], threading.Thread]] = []
    interrupted_at: float | None = None
    killed = False
    try:
        with contextlib.ExitStack() as stack:
            for group, args in groups.items():
                log = stack.enter_context((ARTIFACTS / f"group-{group}.log").open("w"))
                # A session of its own: the terminal's Ctrl-C reaches this process only, which
                # passes one interrupt on (a second could land in a fixture's teardown and cut it).
                process = subprocess.Popen(
                    [sys.executable, "-m", "pytest", *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
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
                    interrupted_at = now
                    for _, process, _ in running:
                        with contextlib.suppress(ProcessLookupError):
                            process.send_signal(signal.SIGINT)
                    why = signal.Signals(stopping[0]).name if stopping else f"past its {timeout / 60:.0f} minutes"
                    _say(f"e2e: {why}: each group is interrupted, and tears down what it started")
                if interrupted_at is not None and not killed and now - interrupted_at > GRACE:
                    killed = True
                    for _, process, _ in running:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(process.pid, signal.SIGKILL)
                    _say(f"e2e: killed after {GRACE:.0f} s: a cluster or controller a fixture started may be left")
                time.sleep(0.2)
            for _, _, relay in running:
                relay.join(timeout=10)  # a process the group left may hold its output open
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    for group, process, _ in running:
        _say(f"e2e group {group}: pytest exited {process.returncode}")
    _say(f"e2e: the groups ended in {minutes} min {seconds} s")
    for group, process, _ in running:
        if process.returncode not in (0, NO_TESTS):
            output = (ARTIFACTS / f"group-{group}.log").read_text(errors="replace")
            for line in failures(output) or [f"no summary: see {ARTIFACTS / f'group-{group}.log'}"]:
                _say(f"e2e group {group}: {line}")
    codes = [process.returncode for _, process, _ in running]
    if stopping:
        return 128 + stopping[0]
    return exit_code(codes) or (1 if interrupted_at is not None else 0)  # past the timeout: a failure


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="make e2e: the e2e modules in two groups at once; other args go to pytest",
        allow_abbrev=False,
    )
    parser.add_argument("--tests", type=Path, default=ROOT / "tests" / "e2e", help="the e2e modules' directory")
    parser.add_argument("--timeout", type=float, default=45, help="minutes before both groups are interrupted")
    parser.add_argument("--module", action="append", default=[], help="run this module (NAME[::TEST]) only")
    args, pytest_args = parser.parse_known_args(argv)
    try:
        groups = group_args(args.tests.resolve(), args.module, pytest_args)
    except UsageError as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)  # the server this starts is stopped on SIGTERM too
    try:
        with contextlib.ExitStack() as stack:
            if not os.environ.get("FLOE_E2E_INFISICAL_ENV") and SERVER.exists():
                try:
                    stack.enter_context(infisical_server())
                except LocalEnvError as exc:
                    print(f"e2e: {exc}", file=sys.stderr)
                    return 1
            return run_groups(groups, args.timeout * 60)
    except KeyboardInterrupt as exc:  # while the server starts or stops
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        print("e2e: interrupted", file=sys.stderr)
        return 128 + int(signum)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
