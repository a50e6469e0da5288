"""`make demo` does what the README's quick start says, and `make demo-down` leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT
from harness.localenv import Infisical, InfisicalAdmin, InfisicalAdminError

pytestmark = pytest.mark.e2e


def demo(command: str, where: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), command, *flags],
        env={**os.environ, "FLOE_DEMO_DIR": str(where)},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.parametrize("auth", ["universal", "kubernetes"])
def test_demo_syncs_every_reference_and_demo_down_removes_what_it_made(
    tools_bin: Path, infisical: Infisical, tmp_path: Path, auth: str
) -> None:
    where = tmp_path / "demo"
    try:  # `demo down` runs however `demo up` ended, a timeout included: nothing it started outlives the step
        up = demo("up", where, *(["--kubernetes-auth"] if auth == "kubernetes" else []))
        identity = (where / "kubernetes-identity").read_text() if (where / "kubernetes-identity").exists() else None
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-2000:]
        lines = up.stdout.splitlines()
        for step in range(6):
            assert any(line.startswith(f"demo: {step}/5 ") for line in lines), f"step {step} said nothing"
        table = lines[lines.index(next(x for x in lines if x.startswith("NAME "))) :]
        assert {row.split()[0] for row in table[1:] if row and not row.startswith("demo:")} == {
            "snowflake-credentials",
            "catalog-credentials",
        }
        assert (
            "keys of Secret floe-jobs/snowflake-credentials (filled by the operator; values not shown): "
            "SNOWFLAKE_ACCOUNT, SNOWFLAKE_PASSWORD, SNOWFLAKE_USER"
        ) in up.stdout
        assert infisical.get("dev", "/compute/snowflake", "SNOWFLAKE_PASSWORD") is not None
        password = infisical.get("dev", "/compute/snowflake", "SNOWFLAKE_PASSWORD")
        assert password and password not in up.stdout + up.stderr, "a secret value in the demo's output"
        # The engine loads the providers installed as a user's are: not from $PATH, and says nothing of it.
        assert "from $PATH" not in up.stdout + up.stderr, up.stdout[-3000:]
        made = [line.split() for line in up.stdout.splitlines() if "random:index:RandomPassword" in line]
        assert ["random:index:RandomPassword", "/compute/snowflake:SNOWFLAKE_PASSWORD", "created"] in [
            m[1:4] for m in made
        ], up.stdout[-3000:]
        none_stored = "client secrets stored in the cluster: none"
        if auth == "kubernetes":
            assert identity and f"identity {identity} (project viewer) logs in with Kubernetes Auth" in up.stdout
            assert none_stored in up.stdout
        else:
            assert none_stored not in up.stdout
    finally:
        down = demo("down", where)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not where.exists()
    # The keys the stack wrote and the ones the demo set by hand are gone; the server it reused runs.
    assert infisical.get("dev", "/compute/snowflake", "SNOWFLAKE_PASSWORD") is None
    assert infisical.get("dev", "/compute/snowflake", "SNOWFLAKE_ACCOUNT") is None
    assert infisical.get("dev", "/catalog/polaris", "POLARIS_TOKEN") is None
    assert "stopping the Infisical server" not in down.stdout
    if identity:  # the identity the demo made is gone with it
        with pytest.raises(InfisicalAdminError) as gone:
            InfisicalAdmin.from_state().call("GET", f"/api/v1/identities/{identity}")
        assert gone.value.status == 404
    running = subprocess.run(["pgrep", "-f", str(where)], capture_output=True, text=True).stdout.split()
    assert running == [], f"processes of the demo still run: {running}"
