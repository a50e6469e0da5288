"""The e2e harness's own promise: a step that fails puts the stacks of its fixtures back as it
found them (manifest, stack config, the module wrapper's data, an `up`), so the steps after it
start where they would have; a passing step costs nothing; a stack the step destroyed stays
destroyed. Run on generated modules with a stand-in `pulumi` that records its commands."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import e2e  # noqa: E402  (tools/e2e.py)
from harness import localenv  # noqa: E402
from harness.fixtures import ORDER  # noqa: E402
from harness.localenv import server_turn  # noqa: E402
from harness.stack import Pulumi  # noqa: E402

MODULE = """
import dataclasses
import pytest
from harness import Pulumi

@dataclasses.dataclass
class Wrapper:
    pulumi: Pulumi
    values: dict

@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    (project / "manifest.yaml").write_text("baseline\\n")
    (project / "Pulumi.dev.yaml").write_text("config: {a: 1}\\n")
    env = {"PATH": "/usr/bin:/bin", "PULUMI_HOME": str(project / "home")}
    return Wrapper(Pulumi(BIN, project, env), {"user": "u1"})

def test_1_passes_and_changes_the_manifest(stack):
    (stack.pulumi.project / "manifest.yaml").write_text("from step 1\\n")
    stack.values["user"] = "u2"

def test_2_fails_half_way(stack):
    (stack.pulumi.project / "manifest.yaml").write_text("half-applied\\n")
    (stack.pulumi.project / "Pulumi.dev.yaml").write_text("config: {a: 2}\\n")
    stack.values["user"] = "half-applied"
    assert False, "step 2 failed"

def test_3_starts_where_step_2_started(stack):
    assert (stack.pulumi.project / "manifest.yaml").read_text() == "from step 1\\n"
    assert (stack.pulumi.project / "Pulumi.dev.yaml").read_text() == "config: {a: 1}\\n"
    assert stack.values == {"user": "u2"}
"""

HISTORY = json.dumps(
    [
        {
            "kind": "update",
            "startTime": "2026-12-06T00:00:00.000Z",
            "endTime": "2026-12-06T00:00:01.000Z",
            "message": "",
            "environment": {},
            "config": {},
            "result": "succeeded",
        }
    ]
)
STATE = {
    "deployed": '{"deployment": {"resources": [{"urn": "urn:pulumi:dev::floe::pulumi:pulumi:Stack::floe-dev"}]}}',
    "destroyed": '{"deployment": {"resources": []}}',
}


FAKE_CLI = """#!/bin/sh
env > "{logs}/env.$$"
[ "$1" = version ] && echo v3.259.0 && exit 0
echo "$*" >> "{logs}/commands"
case "$*" in
  *'stack export'*) echo '{state}';;
  *'stack output'*) echo '{{}}';;
  *'stack history'*) echo '{history}';;
  *'stack rm'*) echo 'error: the stack is in use' >&2; exit 1;;
  *' up '*) {up};;
esac
exit 0
"""
# an `up` that runs until it is stopped (a child of its own, 30 s at most), and says if it was interrupted
SLOW_UP = 'sleep 30 & echo $! > "{logs}/child"; trap \'echo interrupted > "{logs}/signal"; exit 130\' INT; wait'


def fake_cli(tmp_path: Path, state: str = STATE["deployed"], slow_up: bool = False) -> Path:
    """A pulumi as Automation reads it (its version, the state, outputs, a history) in
    ``tmp_path/bin``: each command to ``tmp_path/commands``, its environment to ``tmp_path/env.*``;
    its `stack rm` fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    up = SLOW_UP.format(logs=tmp_path) if slow_up else ":"
    (bin_dir / "pulumi").write_text(FAKE_CLI.format(logs=tmp_path, state=state, history=HISTORY, up=up))
    (bin_dir / "pulumi").chmod(0o755)
    return bin_dir


def run_module(tmp_path: Path, state: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = fake_cli(tmp_path, state)
    log = tmp_path / "commands"
    tests = tmp_path / "e2e"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "from harness.fixtures import pytest_runtest_makereport, restored_after_a_failure  # noqa: F401\n"
    )
    (tests / "test_steps.py").write_text(
        textwrap.dedent(MODULE).replace("BIN", f"__import__('pathlib').Path({str(bin_dir)!r})")
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(tests)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    return result, log.read_text().splitlines() if log.exists() else []


def test_a_failed_step_restores_its_stack_and_a_passing_one_runs_nothing(tmp_path: Path) -> None:
    result, commands = run_module(tmp_path, STATE["deployed"])
    assert "1 failed, 2 passed" in result.stdout, result.stdout[-3000:]
    assert "PASSED e2e/test_steps.py::test_3_starts_where_step_2_started" in result.stdout, result.stdout[-3000:]
    assert "stack dev: restored; its `up` exited 0" in result.stdout
    # Only after step 2, through Automation: is it deployed, the lock of a killed `up`, the `up`
    # back (and what Automation reads after an `up`: the outputs and the last update).
    assert [c.removeprefix("--non-interactive ").removesuffix(" --stack dev") for c in commands] == [
        "stack select",
        "stack export --show-secrets",
        "cancel --yes",
        "up --yes --skip-preview --exec-kind auto.local",
        "stack output --json",
        "stack output --json --show-secrets",
        "stack history --json --show-secrets --page-size 1 --page 1",
    ]


def test_a_stack_the_failed_step_destroyed_stays_destroyed(tmp_path: Path) -> None:
    result, commands = run_module(tmp_path, STATE["destroyed"])
    assert "stack dev: destroyed by the step: left so" in result.stdout, result.stdout[-3000:]
    # Asked after step 2, and after step 3 (which then fails too): never an `up`.
    export = "--non-interactive stack export --show-secrets --stack dev"
    assert commands == ["--non-interactive stack select --stack dev", export, export]


# --- the stack wrapper: Automation over a CLI that keeps the harness's environment --------------


def fake_stack(tmp_path: Path) -> Pulumi:
    bin_dir = fake_cli(tmp_path, slow_up=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: floe\nruntime: python\n")
    return Pulumi(bin_dir, project, {"PATH": "/usr/bin:/bin", "PULUMI_HOME": str(tmp_path / "home")})


def gone(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"


def test_the_cli_gets_the_harness_environment_and_none_of_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/a/developers/kubeconfig")
    stack = fake_stack(tmp_path)
    stack.config_set("floe:environment", "dev")
    stack("state", "unprotect", "--all", "--yes")
    envs = [f.read_text() for f in tmp_path.glob("env.*")]
    assert len(envs) == 4  # the version, stack select, config set, state unprotect
    assert all("KUBECONFIG" not in e and f"PULUMI_HOME={tmp_path / 'home'}" in e for e in envs), envs
    assert (tmp_path / "commands").read_text().splitlines() == [
        "--non-interactive stack select --stack dev",
        "config set floe:environment --plaintext --stack dev --non-interactive -- dev",  # as Automation puts it
        "--non-interactive state unprotect --all --yes --stack dev",
    ]


def test_a_failed_command_that_automation_runs_around_an_operation_fails_its_check(tmp_path: Path) -> None:
    stack = fake_stack(tmp_path)
    with pytest.raises(AssertionError, match=r"stack rm --yes dev exited 1[\s\S]*the stack is in use"):
        stack.destroy(remove=True)
    unchecked = stack.destroy(remove=True, check=False)  # the destroy's own answer
    assert unchecked.args[1] == "destroy" and unchecked.returncode == 0


def test_a_command_past_its_timeout_is_killed_with_what_it_started(tmp_path: Path) -> None:
    stack = fake_stack(tmp_path)
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        stack.up(timeout=1)
    assert time.monotonic() - started < 20
    assert gone(tmp_path / "child") and not (tmp_path / "signal").exists()
    assert stack.cli.timeout == 600  # the next command has the default again


def test_an_interrupted_command_is_interrupted_too_and_ends(tmp_path: Path) -> None:
    """Ctrl-C (the runner's SIGINT to pytest) reaches the CLI, which ends its operation and so lets
    go of the stack's lock before the fixtures' teardown destroys the stack."""
    stack = fake_stack(tmp_path)
    # Python's own handler, also where this test process was started with SIGINT ignored (a
    # background job of a shell, as CI may start it); the fake CLI then gets it by default too
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            stack.up()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert (tmp_path / "signal").read_text() == "interrupted\n"
    assert gone(tmp_path / "child")


def test_a_decrypted_state_is_never_imported(tmp_path: Path) -> None:
    """Automation writes an imported state to a temporary file first."""
    stack = fake_stack(tmp_path)
    decrypted = {"version": 3, "deployment": {"resources": [{"outputs": {"k": {"plaintext": '"v"'}}}]}}
    with pytest.raises(ValueError, match="decrypted secrets"):
        stack.import_(decrypted)
    assert not (tmp_path / "commands").exists()


@pytest.mark.parametrize("name", ["pytest_runtest_makereport", "restored_after_a_failure"])
def test_the_e2e_suite_hands_pytest_the_restore(name: str) -> None:
    """tests/e2e/conftest.py hands pytest the hook and the fixture (pytest finds them there only)."""
    spec = importlib.util.spec_from_file_location("e2e_conftest", ROOT / "tests" / "e2e" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert name in vars(module)


# --- two groups at once, and the module that has the server alone ----------------------------

STEPS = """
import os, time, pytest
from harness.localenv import server_turn

def _log(event):
    with open(os.environ["STEPS_LOG"], "a") as f:
        f.write(f"{time.monotonic():.3f} {os.getpid()} {__name__} {event}\\n")

@pytest.fixture(scope="module", autouse=True)
def production():  # as test_rate_limits.py's server_in_production: the server alone
    if __name__ == "test_rate_limits":
        with server_turn(alone=True):
            yield
    else:
        yield
    _log("torn down")

def test_1():
    _log("1 in")
    time.sleep(float(os.environ.get("STEP_SECONDS", "0.5")))
    _log("1 out")

def test_2():
    _log("2 in")
    assert __name__ != os.environ.get("FAILING"), "step 2 failed"
    time.sleep(0.5)
    _log("2 out")
"""
MODULES = ("test_lifecycle", "test_sync", "test_kubernetes_auth", "test_rate_limits")


def start_groups(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], Path]:
    """tools/e2e.py on modules named as the suite's are, each two steps that log when they run."""
    tests = tmp_path / "e2e"
    tests.mkdir(parents=True)
    (tests / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tools')!r})\n"
        "from harness.fixtures import pytest_collection_modifyitems, turn_at_the_server  # noqa: F401\n"
    )
    for module in MODULES:
        (tests / f"{module}.py").write_text(STEPS)
    log = tmp_path / "steps"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "e2e.py"), "--tests", str(tests), "-p", "no:cacheprovider", "-q", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job is
        preexec_fn=lambda: os.close(0),  # no standard input, as CI may start it
        env={
            **os.environ,
            "STEPS_LOG": str(log),
            "INFISICAL_STATE": str(tmp_path / "state"),  # the turns' lock files
            "FLOE_E2E_INFISICAL_ENV": str(tmp_path / "given.env"),  # so no server of ../shared starts
            "FLOE_E2E_ARTIFACTS": str(tmp_path / "artifacts"),
            **env,
        },
    )
    return process, log


def run_groups(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, list[list[str]]]:
    process, log = start_groups(tmp_path, *args, **env)
    try:
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    events = [line.split(maxsplit=3) for line in log.read_text().splitlines()] if log.exists() else []
    return process.returncode, out + err, events


def test_make_e2e_runs_the_two_groups_at_once_and_the_rate_limit_module_alone(tmp_path: Path) -> None:
    """Group a (the lifecycle's) and group b (Kubernetes Auth's) run at the same time, in two
    processes, each module's steps in order; the rate-limit module (group b, last) holds the
    server alone: no module of group a runs meanwhile."""
    code, out, events = run_groups(tmp_path)
    assert code == 0, out[-3000:]
    assert "[a] 4 passed" in out and "[b] 4 passed" in out, out
    pid = {name: {p for _, p, n, _ in events if n == name} for name in MODULES}
    assert pid["test_lifecycle"] == pid["test_sync"] != pid["test_kubernetes_auth"] == pid["test_rate_limits"]
    at = {(n, e): float(t) for t, _, n, e in events}
    for name in MODULES:  # in order, one step after the other
        assert at[name, "1 out"] <= at[name, "2 in"]
    assert at["test_kubernetes_auth", "1 in"] < at["test_lifecycle", "2 out"], "the groups did not run at once"
    alone = (at["test_rate_limits", "1 in"], at["test_rate_limits", "torn down"])
    for name in ("test_lifecycle", "test_sync"):
        assert at[name, "torn down"] <= alone[0] or alone[1] <= at[name, "1 in"], f"{name} ran beside the rate limits"
    assert (tmp_path / "artifacts" / "group-a.log").read_text().count("4 passed") == 1


def test_make_e2e_fails_when_one_group_fails_and_the_other_still_runs_to_its_end(tmp_path: Path) -> None:
    code, out, events = run_groups(tmp_path, "-vvv", FAILING="test_kubernetes_auth")  # -vv after -q, as make e2e
    assert code == 1, out[-3000:]
    assert "[b] FAILED" in out and "step 2 failed" in out, out[-3000:]
    assert re.search(r"^\[a\] =* ?4 passed", out, re.M) and "e2e group b: pytest exited 1" in out
    assert ["test_rate_limits", "2 out"] in [e[2:] for e in events]
    # after both groups' output, where a CI log's tail shows it: which step failed, and why
    tail = out.split("e2e: the groups ended in", 1)[1].splitlines()[1:]
    assert len(tail) == 1 and tail[0].startswith("e2e group b: FAILED "), tail
    assert tail[0].endswith("test_kubernetes_auth.py::test_2 - AssertionError: step 2 failed"), tail


def test_a_module_named_runs_in_its_group_only(tmp_path: Path) -> None:
    code, out, events = run_groups(tmp_path, "--module", "test_sync.py::test_2")
    assert code == 0, out[-3000:]
    assert [e[2:] for e in events] == [["test_sync", "2 in"], ["test_sync", "2 out"], ["test_sync", "torn down"]]
    assert "[a] 1 passed" in out and "[b]" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["tests/e2e/test_sync.py"],
            "tests/e2e/test_sync.py: a path would run in both groups; name modules with --module",
        ),
        (["tests/e2e"], "tests/e2e: a path would run in both groups"),
        (["--basetemp=/tmp/x"], "--basetemp: both groups would write it"),
        (["--junitxml", "out.xml"], "--junitxml: both groups would write it"),
        (["--module", "test_nothing.py"], "--module test_nothing.py: not an e2e module"),
    ],
)
def test_arguments_that_would_run_or_write_in_both_groups_are_refused(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "e2e.py"), *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 2 and f"e2e: {message}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_group_that_selects_nothing_fails_the_run_only_if_both_do(tmp_path: Path) -> None:
    code, out, _ = run_groups(tmp_path, "-k", "test_sync")
    assert code == 0 and "[a] 2 passed" in out and "e2e group b: pytest exited 5" in out, out[-3000:]
    code, out, _ = run_groups(tmp_path / "none", "-k", "no_such_step")
    assert code == 5, out[-3000:]


@pytest.mark.parametrize("terminal", ["kept", "gone"])
def test_ctrl_c_interrupts_each_group_once_and_they_tear_down(tmp_path: Path, terminal: str) -> None:
    """As a terminal's Ctrl-C: SIGINT to the runner's whole process group; "gone": the reader of
    its output (`make e2e | tee log`, whose tee the same Ctrl-C ends) is gone first."""
    process, log = start_groups(tmp_path, STEP_SECONDS="30")
    deadline = time.monotonic() + 60
    while not log.exists() or log.read_text().count("1 in") < 2:  # both groups in their first step
        assert time.monotonic() < deadline and process.poll() is None, "the groups did not start"
        time.sleep(0.1)
    if terminal == "gone":
        assert process.stdout is not None
        process.stdout.close()
    os.killpg(process.pid, signal.SIGINT)
    try:
        out = process.stdout.read() if terminal == "kept" and process.stdout else ""
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, out[-3000:]
    events = [line.split(maxsplit=3)[2:] for line in log.read_text().splitlines()]
    assert ["test_lifecycle", "torn down"] in events and ["test_kubernetes_auth", "torn down"] in events, events
    groups = "".join((tmp_path / "artifacts" / f"group-{g}.log").read_text() for g in "ab")
    assert groups.count("! KeyboardInterrupt !") == 2 and "During handling of the above exception" not in groups, (
        "an interrupt reached a group twice, or none"
    )
    if terminal == "kept":
        assert "e2e: SIGINT: each group is interrupted, and tears down what it started" in out


def test_the_server_gets_no_standard_input_even_where_the_runner_has_none(tmp_path: Path) -> None:
    """Started with fd 0 closed (as CI may start `make e2e`), a server would get a pipe of its own
    on fd 0; Redis 7.0 then crashes ("Error registering the readable event for the module pipe")."""
    server = tmp_path / "server"
    server.mkdir()
    (server / "up.sh").write_text(
        f"#!/bin/sh\nreadlink /proc/self/fd/0 > {tmp_path / 'stdin'} || echo closed > {tmp_path / 'stdin'}\nexit 1\n"
    )
    (server / "up.sh").chmod(0o755)
    code = (
        "import sys, pathlib; sys.path.insert(0, 'tools'); from harness import localenv\n"
        f"localenv.SERVER = pathlib.Path({str(server)!r})\n"
        "try:\n    localenv.start_server(pathlib.Path(sys.argv[1]))\n"
        "except localenv.LocalEnvError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "state")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(0),
    )
    assert "the Infisical server did not start" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "stdin").read_text().strip() == "/dev/null"


@pytest.mark.parametrize(
    ("codes", "expected"),
    [([0, 0], 0), ([0, 1], 1), ([2, 1], 2), ([5, 0], 0), ([5, 5], 5), ([5, 1], 1), ([-9, 0], 137)],
)
def test_the_run_exits_with_the_first_failed_groups_code(codes: list[int], expected: int) -> None:
    assert e2e.exit_code(codes) == expected


def test_the_modules_that_make_or_list_the_organisations_identities_share_a_group() -> None:
    """Every e2e module runs in a group (a module in none would not run under `make e2e`), and
    those that act as the organisation's admin (they make identities, and one lists them all)
    run in the same group: the lister would otherwise see the other group's."""
    modules = sorted(p.name for p in (ROOT / "tests" / "e2e").glob("test_*.py"))
    assert sorted(m for m, _ in ORDER) == modules
    group = dict(ORDER)
    admin = {m for m in modules if "InfisicalAdmin" in (ROOT / "tests" / "e2e" / m).read_text()}
    assert {"test_managed_identities.py", "test_prod_stack.py", "test_demo.py", "test_rate_limits.py"} <= admin
    assert len({group[m] for m in admin}) == 1, {m: group[m] for m in admin}


def _start(target: Callable[[], None], until: Callable[[], bool] = lambda: True) -> threading.Thread:
    """``target`` in a thread (a daemon: a deadlock fails the test, it does not hang it), once
    ``until()`` holds: waited for, not slept on, so a loaded machine changes nothing."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not until():
        assert time.monotonic() < deadline, f"{target.__name__} never got there"
        time.sleep(0.01)
    return thread


def _waiting_alone(state: Path) -> bool:
    """Whether a turn alone is waiting or held: it keeps the turnstile, which a shared turn holds
    only a moment (so it is asked twice, 0.1 s apart)."""

    def held() -> bool:
        with (state / "turnstile.lock").open("a") as turnstile:
            try:
                fcntl.flock(turnstile, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(turnstile, fcntl.LOCK_UN)
            return False

    if not held():
        return False
    time.sleep(0.1)
    return held()


def _taker(
    events: list[str], name: str, *, alone: bool = False, hold: threading.Event | None = None
) -> Callable[[], None]:
    """A thread's body that takes a turn, and logs ``name`` in and out (holding the turn until
    ``hold`` is set, if given)."""

    def take() -> None:
        with server_turn(alone=alone):
            events.append(f"{name} in")
            if hold is not None:
                hold.wait(10)
            events.append(f"{name} out")

    take.__name__ = name
    return take


def _all_ended(threads: list[threading.Thread], events: list[str]) -> None:
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads), f"deadlocked after {events}"


def test_a_turn_alone_waits_for_the_shared_turns_and_goes_before_those_asked_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFISICAL_STATE", str(tmp_path))
    events: list[str] = []
    release = threading.Event()
    threads = [
        _start(_taker(events, "first", hold=release), lambda: "first in" in events),
        _start(_taker(events, "second"), lambda: "second out" in events),  # shared turns go together
        _start(_taker(events, "alone", alone=True), lambda: _waiting_alone(tmp_path)),
        _start(_taker(events, "later")),
    ]
    time.sleep(0.2)
    assert events == ["first in", "second in", "second out"], "a turn went in while the first shared one was held"
    release.set()
    _all_ended(threads, events)
    assert events == [
        "first in",
        "second in",
        "second out",
        "first out",
        "alone in",
        "alone out",
        "later in",
        "later out",
    ]


def test_a_turn_alone_inside_a_shared_one_waits_for_the_others_and_takes_the_shared_one_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the rate-limit module does: its module's shared turn, then server_in_production's."""
    monkeypatch.setenv("INFISICAL_STATE", str(tmp_path))
    monkeypatch.setattr(localenv, "server_node_env", lambda state: "production")  # no restart here
    events: list[str] = []
    release = threading.Event()

    def rate_limits() -> None:
        with server_turn(alone=False):
            with localenv.server_in_production():
                events.append("production in")
            with server_turn(alone=False):  # nested: already held
                events.append("shared again")

    threads = [
        _start(_taker(events, "other", hold=release), lambda: "other in" in events),
        _start(rate_limits, lambda: _waiting_alone(tmp_path)),
        _start(_taker(events, "other next")),
    ]
    time.sleep(0.2)
    assert events == ["other in"]
    release.set()
    _all_ended(threads, events)
    assert events[:3] == ["other in", "other out", "production in"], events
    assert sorted(events[3:]) == ["other next in", "other next out", "shared again"]
