"""The real Pulumi CLI in a copy of the program: a project directory, a file backend and an
isolated PULUMI_HOME with the built plugins installed (:func:`pulumi_env`); the one wrapper every e2e
module and bench drives its stacks with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .localenv import ROOT, pulumi_home

PASSPHRASE = "floe-e2e-passphrase"


@dataclass
class Pulumi:
    """The real CLI in a project directory, with a file backend and an isolated PULUMI_HOME."""

    bin_dir: Path
    project: Path
    env: dict[str, str]
    stack: str = "dev"

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "pulumi"), *args, "--non-interactive", "--stack", self.stack],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            errors = "\n".join(line for line in result.stdout.splitlines() if "error" in line)[-4000:]
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n--- errors\n{errors}"
                f"\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-3000:]}"
            )
        return result

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

    def deployed(self) -> bool:
        """Whether the stack exists and holds a resource (a destroyed one does not)."""
        state = self("stack", "export", check=False)
        if state.returncode != 0:
            return False
        return bool(json.loads(state.stdout).get("deployment", {}).get("resources"))

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
        kill_orphaned_plugins(self)  # a killed `up` may have left its plugins
        self("cancel", "--yes", check=False)  # and its lock
        try:
            result = self("up", "--yes", "--skip-preview", check=False)
        except subprocess.TimeoutExpired:
            kill_orphaned_plugins(self)
            return "restored files; its `up` did not end within 600 s"
        return f"restored; its `up` exited {result.returncode}"

    def write_manifest(self, text: str) -> None:
        (self.project / "manifest.yaml").write_text(text)

    def init(self, config: Iterable[tuple[str, str, bool]] = ()) -> None:
        """`pulumi stack init`, then ``config`` ((key, value, secret) each; a dotted key is a path)."""
        self("stack", "init")
        self.config_set_all(config)

    def config_set_all(self, config: Iterable[tuple[str, str, bool]]) -> None:
        """Every (key, value, secret) of ``config`` in one command; a dotted key is a path
        (``floe:secretValues.REF.KEY``)."""
        args = [a for key, value, secret in config for a in ("--secret" if secret else "--plaintext", f"{key}={value}")]
        if args:
            self("config", "set-all", "--path", *args)

    def config_set(self, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        self("config", "set", *(["--secret"] if secret else []), *(["--path"] if path else []), key, value)

    def up(self) -> subprocess.CompletedProcess[str]:
        return self("up", "--yes", "--skip-preview")

    def preview_json(self, *args: str) -> dict[str, Any]:
        result = self("preview", "--json", *args)
        return dict(json.loads(result.stdout))

    def state(self) -> str:
        """The raw checkpoint file of the file backend, as it sits on disk."""
        backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://"))
        return (backend / ".pulumi" / "stacks" / "floe" / f"{self.stack}.json").read_text()

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self("stack", "output", "--json", "--show-secrets").stdout))

    def outputs_of(self, kind: str) -> dict[str, Any]:
        """The outputs of the stack's one ``pulumi-python:dynamic/infisical:<kind>`` from its state,
        secrets decrypted (``--show-secrets`` keeps them as ``{<signature>, "plaintext": <JSON>}``)."""
        state = json.loads(self("stack", "export", "--show-secrets").stdout)
        (found,) = [
            r["outputs"]
            for r in state["deployment"]["resources"]
            if r["type"] == f"pulumi-python:dynamic/infisical:{kind}"
        ]
        return {
            k: json.loads(v["plaintext"]) if isinstance(v, dict) and "plaintext" in v else v for k, v in found.items()
        }


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
    as soon as ``until()`` holds, as a lost machine or an out-of-memory kill would end it."""
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
        kill_orphaned_plugins(pulumi)


def kill_orphaned_plugins(pulumi: Pulumi) -> None:
    """The engine starts its plugins in process groups of their own: killed, it leaves them running
    (the random provider, the dynamic provider and its shell wrapper). They are this test's: their
    command lines name its project or its PULUMI_HOME."""
    ours = (str(pulumi.project), pulumi.env["PULUMI_HOME"])
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
