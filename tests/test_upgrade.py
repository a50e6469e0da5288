"""`floe secrets upgrade` against a stand-in pulumi CLI that keeps a state file: the commands it
runs and in what order, where the values go (never a file or an argument), a failed import, and a
rerun. The real CLI runs it in tests/e2e/test_generated.py."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from floe_infra.cli import main
from floe_infra.plan.desired import LEGACY_PASSWORD_TYPE

PLATFORM = "urn:pulumi:prod::floe::floe:secrets:Platform::floe-secrets"
FAKE = textwrap.dedent('''\
    #!{python}
    """A stand-in for pulumi: `stack export`, `import --file /dev/stdin`, `state unprotect|delete`,
    `config set`, over state.json; every call (argv, stdin) is logged to calls.jsonl."""
    import json, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    argv = [a for a in sys.argv[1:] if a not in ("--non-interactive", "--yes")]
    stdin = sys.stdin.read() if not sys.stdin.isatty() else ""
    with open(os.path.join(here, "calls.jsonl"), "a") as log:
        log.write(json.dumps({{"argv": argv, "stdin": stdin, "files": os.listdir("/tmp")}}) + "\\n")
    state_file = os.path.join(here, "state.json")
    state = json.load(open(state_file))
    if argv[:2] == ["stack", "export"]:
        print(json.dumps({{"deployment": state}}))
    elif argv[0] == "import":
        spec = json.loads(stdin)
        if os.environ.get("FAKE_FAIL") == "import":
            print("error: cannot import " + spec["resources"][0]["id"], file=sys.stderr)
            sys.exit(1)
        platform = spec["nameTable"]["platform"]
        head, kind, _ = platform.rsplit("::", 2)
        for r in spec["resources"]:
            state["resources"].append({{"urn": head + "::" + kind + "$" + r["type"] + "::" + r["name"],
                                       "type": r["type"], "protect": True,
                                       "outputs": {{"result": {{"plaintext": json.dumps(r["id"])}}}}}})
    elif argv[:2] == ["state", "unprotect"]:
        for r in state["resources"]:
            if r["urn"] in argv:
                r["protect"] = False
    elif argv[:2] == ["state", "delete"]:
        state["resources"] = [r for r in state["resources"] if r["urn"] not in argv]
    elif argv[:2] == ["config", "set"]:
        pass
    json.dump(state, open(state_file, "w"))
''')


def _legacy(name: str, value: str, protect: bool) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:prod::floe::floe:secrets:Platform${LEGACY_PASSWORD_TYPE}::{name}",
        "type": LEGACY_PASSWORD_TYPE,
        "protect": protect,
        "outputs": {"result": {"4dabf18193072939515e22adb298388d": "1", "plaintext": json.dumps(value)}},
    }


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(FAKE.format(python=sys.executable))
    (bin_dir / "pulumi").chmod(0o755)
    (bin_dir / "state.json").write_text(
        json.dumps(
            {
                "resources": [
                    {"urn": PLATFORM, "type": "floe:secrets:Platform"},
                    _legacy("/db:PASSWORD", "v-db-canary", True),
                    _legacy("/app:TOKEN", "v-app-canary", False),
                ]
            }
        )
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    return bin_dir


def _calls(fake: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (fake / "calls.jsonl").read_text().splitlines()]


def test_upgrade_imports_through_stdin_then_unprotects_then_records_it(
    fake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["secrets", "upgrade", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("moved 2 generated value(s) into RandomPassword, each unchanged: /db:PASSWORD, /app:TOKEN")
    calls = _calls(fake)
    assert [c["argv"][:2] for c in calls] == [
        ["stack", "export"],
        ["import", "--file"],
        ["state", "unprotect"],
        ["stack", "export"],
        ["config", "set"],
    ]
    imported = calls[1]
    assert imported["argv"][:3] == ["import", "--file", "/dev/stdin"]
    assert {r["id"] for r in json.loads(imported["stdin"])["resources"]} == {"v-db-canary", "v-app-canary"}
    assert not any("canary" in " ".join(c["argv"]) for c in calls), "a value in pulumi's arguments"
    assert not any(f.startswith("floe-upgrade") for c in calls for f in c["files"]), "an import file on disk"
    assert "canary" not in out
    state = json.loads((fake / "state.json").read_text())["resources"]
    assert {r["type"]: False for r in state if r.get("protect")} == {}  # nothing left protected
    assert calls[-1]["argv"][:4] == ["config", "set", "floe:passwords", "random"]


def test_a_rerun_moves_nothing_and_a_failed_import_says_why_without_the_value(
    fake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "import")
    assert main(["secrets", "upgrade", "--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert (
        "floe: error: importing the values into RandomPasswords (`pulumi import`) failed (pulumi exited 1): "
        "error: cannot import [secret]"
        in err
        and "canary" not in err
    )
    # The state is written once more after the failed import: the legacy entries are unprotected.
    assert [c["argv"][:2] for c in _calls(fake)][-1] == ["state", "unprotect"]
    monkeypatch.delenv("FAKE_FAIL")
    assert main(["secrets", "upgrade", "--stack", "prod"]) == 0
    capsys.readouterr()
    assert main(["secrets", "upgrade", "--stack", "prod"]) == 0
    said = capsys.readouterr().out
    assert said == "stack prod: nothing to upgrade (2 value(s) moved before); floe:passwords is random\n"
