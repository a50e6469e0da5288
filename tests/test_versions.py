"""What users download and what the e2e builds are the same released versions, and the README names
them; and `tools/harness/cluster.py down` signals only the processes it started."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from support import ROOT

RELEASE = re.compile(r"\d+\.\d+\.\d+")  # no a, b, rc, dev or local part


def build_pin(name: str) -> str:
    """A version variable of tools/build.sh (`NAME=value  # comment`)."""
    match = re.search(rf"(?m)^{name}=(\S+)", (ROOT / "tools" / "build.sh").read_text())
    assert match, f"tools/build.sh sets no {name}"
    return match[1].removeprefix("v")


def requirement(package: str) -> str:
    match = re.search(rf"(?m)^{re.escape(package)}==(\S+)$", (ROOT / "requirements.txt").read_text())
    assert match, f"requirements.txt does not pin {package}"
    return match[1]


def test_the_kubernetes_sdk_asks_for_the_provider_the_e2e_builds_and_it_is_a_release() -> None:
    declared = json.loads(files("pulumi_kubernetes").joinpath("pulumi-plugin.json").read_text())
    assert declared["name"] == "kubernetes"
    assert declared["version"] == build_pin("KUBERNETES_PROVIDER_VERSION")
    assert RELEASE.fullmatch(declared["version"]), f"{declared['version']} is a prerelease: plugin servers refuse it"
    assert requirement("pulumi-kubernetes") == declared["version"] == version("pulumi-kubernetes")


def test_the_random_sdk_asks_for_the_provider_the_e2e_builds_from_the_vendored_source() -> None:
    declared = json.loads(files("pulumi_random").joinpath("pulumi-plugin.json").read_text())
    assert declared["name"] == "random"
    assert RELEASE.fullmatch(declared["version"]), f"{declared['version']} is a prerelease: plugin servers refuse it"
    pins = (requirement("pulumi-random"), version("pulumi-random"), build_pin("RANDOM_VERSION"))
    assert pins == (declared["version"],) * 3
    # the source it builds from is that tag's (../shared/vendor/pulumi-random-v<version>)
    assert "random_src=$vendor/pulumi-random-v${RANDOM_VERSION}" in (ROOT / "tools" / "build.sh").read_text()


def test_the_pulumi_sdk_matches_the_cli_the_e2e_builds_and_the_workflows_install() -> None:
    cli = build_pin("PULUMI_VERSION")
    assert RELEASE.fullmatch(cli), f"the CLI build {cli} is a prerelease"
    assert requirement("pulumi") == version("pulumi") == cli
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        steps = [s for job in yaml.safe_load(workflow.read_text())["jobs"].values() for s in job.get("steps", [])]
        for step in steps:
            if "pulumi-version" in step.get("with", {}):
                assert str(step["with"]["pulumi-version"]) == cli, f"{workflow.name} installs another CLI"


def test_every_pin_is_a_release() -> None:
    pins = re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.txt").read_text())
    assert pins
    for package, pinned in pins:
        assert RELEASE.fullmatch(pinned), f"requirements.txt pins {package}=={pinned}, not a release"


def cluster_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cluster", ROOT / "tools" / "harness" / "cluster.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_down_stops_its_own_processes_and_leaves_a_reused_pid_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = cluster_module()
    sleep = "/bin/sleep" if Path("/bin/sleep").exists() else "/usr/bin/sleep"
    ours = subprocess.Popen([sleep, "60"], start_new_session=True)
    stranger = subprocess.Popen([sleep, "61"], start_new_session=True)
    try:
        state = tmp_path / "state"
        state.mkdir()
        # The stranger's pid is recorded as etcd: after a reboot, pid reuse gave it to another program.
        (state / "pids.json").write_text(
            json.dumps(
                {
                    "etcd": {"pid": stranger.pid, "binary": str(tmp_path / "bin" / "etcd")},
                    "kwok": {"pid": ours.pid, "binary": sleep},
                }
            )
        )
        assert cluster.owned(ours.pid, sleep) and not cluster.owned(stranger.pid, str(tmp_path / "bin" / "etcd"))
        cluster.LocalCluster(state).down()
        deadline = time.monotonic() + 5
        while ours.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ours.poll() is not None, "its own process was not stopped"
        assert stranger.poll() is None, "a process it did not start was signalled"
        assert f"not stopping pid {stranger.pid} (recorded as etcd)" in capsys.readouterr().err
        assert not state.exists()
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


def test_cluster_script_runs_as_a_command() -> None:
    """`make cluster` runs it with the system Python: no site packages (-S), the standard library only."""
    script = ROOT / "tools" / "harness" / "cluster.py"
    result = subprocess.run([sys.executable, "-S", str(script)], capture_output=True, text=True)
    assert result.returncode == 2 and "python tools/harness/cluster.py down STATE_DIR" in result.stderr


# --- tools/build.sh on a user's machine ----------------------------------------------------------


def fake_go(tmp_path: Path, version: str, build_exit: int) -> dict[str, str]:
    """A PATH whose `go` reports ``version`` and whose builds exit ``build_exit``."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "env GOVERSION" ]; then echo {version}; exit 0; fi\n'
        f'echo "go: fake failure of: $*" >&2; exit {build_exit}\n'
    )
    go.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "FLOE_TOOLS": str(tmp_path / "tools")}


def test_build_sh_says_which_go_it_needs_within_a_second(tmp_path: Path) -> None:
    start = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "tools" / "build.sh")],
        env=fake_go(tmp_path, "go1.21.0", 0),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - start < 5
    assert result.returncode != 0
    assert re.fullmatch(
        r"tools: Go 1\.\d+(\.\d+)? or newer is needed \(a go\.mod asks for it\), found Go 1\.21\.0 "
        r"\(\S+/go\)\n",
        result.stderr,
    ), result.stderr


def test_build_sh_leaves_no_partial_tools_dir_when_a_step_fails(tmp_path: Path) -> None:
    vendor = ROOT.parent / "shared" / "vendor"
    if not vendor.is_dir():
        pytest.skip(f"the vendored sources are not at {vendor} (../shared)")
    env = fake_go(tmp_path, "go1.99.0", 1)
    result = subprocess.run([str(ROOT / "tools" / "build.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "tools: build failed" in result.stderr and "removed the partial" in result.stderr
    tools = Path(env["FLOE_TOOLS"])
    assert not tools.exists() or list(tools.iterdir()) == [], "a partial tools directory was left behind"
