"""The real Pulumi CLI in a copy of the program, driven through Pulumi's Automation API: a project
directory, a file backend and an isolated PULUMI_HOME with the built plugins installed
(:func:`pulumi_env`); the one wrapper every e2e module and bench drives its stacks with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

from .localenv import ROOT, pulumi_home

PASSPHRASE = "floe-e2e-passphrase"
TIMEOUT = 600.0  # seconds a CLI command may take unless told otherwise


@dataclass(frozen=True)
class Ran:
    """One CLI command: its arguments, exit code, output and wall time (Automation raises on a
    failure, and its error keeps them only as text)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Cli(auto.PulumiCommand):
    """The command Automation runs (``bin_dir/pulumi``), with exactly the harness's environment
    (Automation's own adds the caller's: a developer's KUBECONFIG or PULUMI_ACCESS_TOKEN would reach
    the stack), stopped with the plugins it started past :attr:`timeout` (Automation's own waits
    for ever) or when the caller is interrupted (Automation's own leaves it running)."""

    def __init__(self, bin_dir: Path, env: Mapping[str, str]) -> None:
        # not PulumiCommand's __init__: it asks the version with the caller's whole environment
        self.command = str(bin_dir / "pulumi")
        self.env = {**env, "PULUMI_AUTOMATION_API": "true"}
        said = subprocess.run(
            [self.command, "version"], env=self.env, capture_output=True, text=True, timeout=60, check=True
        )
        self.version = VersionInfo.parse(said.stdout.strip().removeprefix("v"))
        self.timeout = TIMEOUT
        self.ran: list[Ran] = []  # since the wrapper's last operation began

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: auto.OnOutput | None = None,
        on_error: auto.OnOutput | None = None,
    ) -> auto.CommandResult:
        flags = args[: args.index("--")] if "--" in args else args
        argv = [self.command, *(() if "--non-interactive" in flags else ("--non-interactive",)), *args]
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**self.env, **additional_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # stopped as a whole, by this process only
        )
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except BaseException as exc:  # the timeout, or the caller interrupted (Ctrl-C: pytest's teardown follows)
            self._stop(process, cwd, interrupt=not isinstance(exc, subprocess.TimeoutExpired))
            raise
        for line in stdout.splitlines():
            if on_output:
                on_output(line)
        for line in stderr.splitlines():
            if on_error:
                on_error(line)
        self.ran.append(Ran(tuple(argv[1:]), process.returncode, stdout, stderr, time.monotonic() - started))
        result = auto.CommandResult(stdout=stdout, stderr=stderr, code=process.returncode)
        if process.returncode != 0:
            raise create_command_error(result)
        return result

    def _stop(self, process: subprocess.Popen[str], cwd: str, *, interrupt: bool) -> None:
        """An interrupted command gets SIGINT first, as a terminal's Ctrl-C would give it (the engine
        then ends its operation and lets go of the stack's lock), 30 s to end; then, and past a
        timeout at once, SIGKILL to its process group and the plugins it started."""
        if interrupt:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        kill_orphaned_plugins(cwd, self.env["PULUMI_HOME"])
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=10)


class Pulumi:
    """A stack of the program in ``project``, through Automation's :class:`~pulumi.automation.Stack`
    on a :class:`~pulumi.automation.LocalWorkspace` whose CLI is :class:`Cli`. ``up``, ``preview``,
    ``refresh``, ``destroy`` and a bare command answer with the operation's :class:`Ran`; with
    ``check`` (the default) a failure of any command of the operation raises AssertionError with
    its errors and output. The other methods return what they read, and raise Automation's
    CommandError on a failure."""

    def __init__(self, bin_dir: Path, project: Path, env: dict[str, str], stack: str = "dev") -> None:
        self.bin_dir = bin_dir
        self.project = project
        self.env = env
        self.stack = stack
        self.cli = Cli(bin_dir, env)
        self.workspace = auto.LocalWorkspace(work_dir=str(project), pulumi_command=self.cli)
        self._selected: auto.Stack | None = None

    def _auto(self) -> auto.Stack:
        if self._selected is None:
            self._selected = auto.Stack.select(self.stack, self.workspace)
        return self._selected

    def _op(self, verb: str, operation: Callable[[], object], check: bool, timeout: float) -> Ran:
        """``operation`` (an Automation call) and the :class:`Ran` of its command whose verb is
        ``verb``. With ``check``, the first command of it that failed (the operation's own, or one
        Automation ran around it: ``stack select``, ``stack rm`` after a destroy) raises."""
        self.cli.ran.clear()
        self.cli.timeout = timeout
        unexpected: Exception | None = None
        try:
            operation()
        except auto.CommandError:
            pass  # in cli.ran
        except (subprocess.TimeoutExpired, AssertionError):
            raise
        except Exception as exc:  # Automation's own, e.g. a preview with no summary event
            unexpected = exc
        finally:
            self.cli.timeout = TIMEOUT
        failed = next((r for r in self.cli.ran if r.returncode != 0), None)
        ran = next((r for r in self.cli.ran if verb in r.args[1:3]), failed)  # failed: it never ran
        if unexpected is not None or ran is None:
            commands = "; ".join(f"{' '.join(r.args)} exited {r.returncode}" for r in self.cli.ran)
            raise AssertionError(f"pulumi {verb}: {unexpected!r} after: {commands or 'no command'}") from unexpected
        if check and failed is not None:
            errors = "\n".join(line for line in failed.stdout.splitlines() if "error" in line)[-4000:]
            raise AssertionError(
                f"pulumi {' '.join(failed.args)} exited {failed.returncode}\n--- errors\n{errors}"
                f"\n--- stdout\n{failed.stdout[-6000:]}\n--- stderr\n{failed.stderr[-3000:]}"
            )
        return ran

    def __call__(self, *args: str, check: bool = True, timeout: float = TIMEOUT) -> Ran:
        """A CLI command Automation has no operation for (``state unprotect --all``, and a
        ``stack export`` whose secrets stay encrypted), run by the same :class:`Cli`."""
        argv = [*args, "--stack", self.stack]
        return self._op(args[0], lambda: self.cli.run(argv, str(self.project), {}), check, timeout)

    def init(self, config: Iterable[tuple[str, str, bool]] = ()) -> None:
        """A new stack, then ``config`` ((key, value, secret) each; a dotted key is a path)."""
        self._selected = auto.Stack.create(self.stack, self.workspace)
        self.config_set_all(config)

    def config_set_all(self, config: Iterable[tuple[str, str, bool]]) -> None:
        """Every (key, value, secret) of ``config`` in one command; a dotted key is a path
        (``floe:secretValues.REF.KEY``)."""
        values = {key: auto.ConfigValue(value, secret) for key, value, secret in config}
        if values:
            self._auto().set_all_config(values, path=True)

    def config_set(self, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        self._auto().set_config(key, auto.ConfigValue(value, secret), path=path)

    def config_get(self, key: str) -> str:
        return self._auto().get_config(key).value

    def config_rm(self, key: str) -> None:
        self._auto().remove_config(key)

    def up(self, *, target: Sequence[str] = (), check: bool = True, timeout: float = TIMEOUT) -> Ran:
        """`up` with no preview (of ``target``'s URNs only, if given)."""
        return self._op("up", lambda: self._auto().up(target=[*target] or None), check, timeout)

    def preview(
        self,
        *,
        expect_no_changes: bool = False,
        policy_packs: Sequence[str] = (),
        check: bool = True,
        timeout: float = TIMEOUT,
    ) -> Ran:
        def preview() -> object:
            return self._auto().preview(expect_no_changes=expect_no_changes or None, policy_packs=[*policy_packs])

        return self._op("preview", preview, check, timeout)

    def preview_json(self, *, policy_packs: Sequence[str] = ()) -> dict[str, Any]:
        """The engine's plan: ``preview --json``."""
        ran = self._op("preview", lambda: self._auto().preview(json=True, policy_packs=[*policy_packs]), True, TIMEOUT)
        return dict(json.loads(ran.stdout))

    def refresh(
        self,
        *,
        expect_no_changes: bool = False,
        preview_only: bool = False,
        clear_pending_creates: bool = False,
        check: bool = True,
    ) -> Ran:
        def refresh() -> object:
            return self._auto().refresh(
                expect_no_changes=expect_no_changes or None,
                preview_only=preview_only or None,
                clear_pending_creates=clear_pending_creates or None,
            )

        return self._op("refresh", refresh, check, TIMEOUT)

    def destroy(self, *, remove: bool = False, check: bool = True, timeout: float = TIMEOUT) -> Ran:
        return self._op("destroy", lambda: self._auto().destroy(remove=remove), check, timeout)

    def cancel(self) -> None:
        """Take off the lock a killed `up` left (there may be none)."""
        with contextlib.suppress(auto.CommandError):
            self._auto().cancel()

    def export(self) -> dict[str, Any]:
        """The stack's state, secrets decrypted (``{<signature>, "plaintext": <JSON>}`` each)."""
        return dict(self._auto().export_stack().deployment or {})

    def import_(self, state: Mapping[str, Any]) -> None:
        """``stack import`` of ``state`` as a raw ``stack export`` writes it: its secrets encrypted
        (Automation writes it to a temporary file first, which a decrypted state must never be)."""
        if '"plaintext"' in json.dumps(state):
            raise ValueError("a state with decrypted secrets (from export()); import a raw `stack export`")
        self._auto().import_stack(auto.Deployment(version=state.get("version"), deployment=dict(state["deployment"])))

    def remove(self, *, check: bool = True) -> Ran:
        """``stack rm --force``: the stack's state and config go, whatever it holds."""
        self._selected = None
        return self._op("stack", lambda: self.workspace.remove_stack(self.stack, force=True), check, TIMEOUT)

    def outputs(self) -> dict[str, Any]:
        return {key: output.value for key, output in self._auto().outputs().items()}

    def resources(self) -> list[dict[str, Any]]:
        return list(self.export().get("resources") or [])

    def deployed(self) -> bool:
        """Whether the stack exists and holds a resource (a destroyed one does not)."""
        try:
            return bool(self.resources())
        except auto.CommandError:
            return False

    def outputs_of(self, kind: str) -> dict[str, Any]:
        """The outputs of the stack's one ``pulumi-python:dynamic/infisical:<kind>``, decrypted."""
        (found,) = [r["outputs"] for r in self.resources() if r["type"] == f"pulumi-python:dynamic/infisical:{kind}"]
        return {
            k: json.loads(v["plaintext"]) if isinstance(v, dict) and "plaintext" in v else v for k, v in found.items()
        }

    def state(self) -> str:
        """The raw checkpoint file of the file backend, as it sits on disk."""
        backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
        return (backend / ".pulumi" / "stacks" / "floe" / f"{self.stack}.json").read_text()

    def floe(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The floe CLI in the project directory, with this environment (its PATH has this pulumi)
        and ``env`` over it."""
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "floe"), *args],
            cwd=self.project,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    @classmethod
    def on_copy(cls, tmp: Path, tools_bin: Path, kubeconfig: Path, manifest: str = "", stack: str = "dev") -> Pulumi:
        """The CLI on a new copy of the program in ``tmp`` (:func:`make_project`), with its own
        backend and PULUMI_HOME (:func:`pulumi_env`); the stack is not created yet (:meth:`init`)."""
        project = make_project(tmp, tools_bin, kubeconfig, manifest)
        return cls(tools_bin, project, pulumi_env(tmp, tools_bin, kubeconfig), stack)

    def inputs(self) -> dict[Path, str | None]:
        """What an `up` reads besides the cluster and Infisical: the manifest and the stack's config
        file (None: not there)."""
        files = (self.project / "manifest.yaml", self.project / f"Pulumi.{self.stack}.yaml")
        return {f: f.read_text() if f.exists() else None for f in files}

    def restore(self, inputs: dict[Path, str | None]) -> str:
        """Put back ``inputs`` (from :meth:`inputs`) and `up` to them: the stack as it was then.
        A destroyed stack is left so; what happened is the answer."""
        if not self.deployed():
            return "destroyed by the step: left so"
        for path, text in inputs.items():
            if text is None:
                path.unlink(missing_ok=True)
            else:
                path.write_text(text)
        kill_orphaned_plugins(str(self.project), self.env["PULUMI_HOME"])  # a killed `up` may have left its plugins
        self.cancel()  # and its lock
        try:
            result = self.up(check=False)
        except subprocess.TimeoutExpired:
            return f"restored files; its `up` did not end within {TIMEOUT:.0f} s"
        return f"restored; its `up` exited {result.returncode}"

    def write_manifest(self, text: str) -> None:
        (self.project / "manifest.yaml").write_text(text)


def make_project(tmp: Path, tools_bin: Path, kubeconfig: Path, manifest: str) -> Path:
    """A copy of the program (Pulumi.yaml, __main__.py and the runtime virtualenv) with ``manifest``."""
    project = tmp / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((ROOT / name).read_text())
    (project / "venv").symlink_to(ROOT / "venv")
    (project / "manifest.yaml").write_text(manifest)
    return project


def pulumi_env(tmp: Path, tools_bin: Path, kubeconfig: Path) -> dict[str, str]:
    backend = tmp / "backend"
    backend.mkdir()
    scratch = tmp / "scratch"  # the Kubernetes provider leaves a kubeconfig file per Helm operation
    scratch.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "HOME", "USER")}
    return {
        **keep,
        "TMPDIR": str(scratch),
        "PATH": f"{tools_bin}:{ROOT / '.venv' / 'bin'}:/usr/bin:/bin",
        **pulumi_home(tools_bin, tmp / "pulumi-home"),
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "KUBECONFIG": str(kubeconfig),
        "NO_COLOR": "1",
    }


def killed_up(pulumi: Pulumi, until: Callable[[], bool], what: str, *args: str, timeout: float = 120) -> None:
    """`pulumi up ARGS` killed with SIGKILL (its whole process group, and the plugins it started)
    as soon as ``until()`` holds, as a lost machine or an out-of-memory kill would end it: the one
    command not run through Automation, whose operations give no handle on the process."""
    up = subprocess.Popen(
        [
            str(pulumi.bin_dir / "pulumi"),
            "up",
            "--yes",
            "--skip-preview",
            "--non-interactive",
            "--stack",
            pulumi.stack,
            *args,
        ],
        cwd=pulumi.project,
        env=pulumi.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert up.poll() is None, f"`pulumi up` ended before {what}"
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.2)
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
        kill_orphaned_plugins(str(pulumi.project), pulumi.env["PULUMI_HOME"])


def kill_orphaned_plugins(project: str, pulumi_home: str) -> None:
    """The engine starts its plugins in process groups of their own: killed, it leaves them running
    (the random provider, the dynamic provider and its shell wrapper). They are this test's: their
    command lines name its project or its PULUMI_HOME."""
    ours = (project, pulumi_home)
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if proc.name.isdigit() and int(proc.name) != os.getpid() and any(o in cmdline for o in ours):
                found.add(int(proc.name))
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                wrapper = Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace")
                if "pulumi-resource-pulumi-python" in wrapper:
                    found.add(parent)
        except (OSError, ValueError, IndexError):
            continue
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
