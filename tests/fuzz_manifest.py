"""Fuzz `floe secrets plan` with generated manifests for a while: every input must end in a plan
(exit 0) or one clean error (exit 2), never a traceback, in bounded memory.

    .venv/bin/python tests/fuzz_manifest.py [--minutes 10]

Inputs: manifests built from the schema's own vocabulary with wrong types, odd values and YAML's
sharp edges (anchors, aliases, tags, YAML 1.1 booleans, merge keys), then mutated as text.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from floe_infra.cli import main  # noqa: E402

WORDS = [
    "plugins",
    "secrets",
    "type",
    "config",
    "site_url",
    "project_slug",
    "operator",
    "namespace",
    "chart_version",
    "chart_repo",
    "api",
    "eso",
    "install",
    "resync_interval",
    "identity_secret",
    "path",
    "keys",
    "generate",
    "length",
    "special",
    "adopt",
    "renamed_from",
    "via",
    "auto_reload",
    "compute",
    "catalog",
    "connection_secret_ref",
    "infisical",
    "k8s",
    "v1beta1",
    "eso",
    "operator",
    "SNOWFLAKE_USER",
    "NO",
    "on",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(WORDS),
    st.text(max_size=20),
    st.sampled_from(
        [
            "https://x.io",
            "http://1.2.3.4/api",
            "60s",
            "0m",
            "99999999w",
            "v0.11.5",
            "latest",
            "/a/b",
            "a" * 300,
            "floe-platform",
            "Dev Env",
        ]
    ),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=8))
data = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=5), max_leaves=30)
documents = st.dictionaries(st.sampled_from(WORDS), data, max_size=6)
SHARP = [
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "<<: *a\n",
    "? ",
    "--- ",
    "...\n",
    "%YAML 1.1\n",
    "!!binary ",
    "\t",
    "{",
    "[",
    "'",
    '"',
    ": ",
    "\n  ",
    "\\u0000",
    "\x00",
    "\ufeff",
    "~",
    "|\n",
    ">-\n",
]


@st.composite
def manifests(draw: st.DrawFn) -> str:
    doc = draw(documents)
    try:
        text = yaml.safe_dump(doc, default_flow_style=draw(st.booleans()), allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        text = repr(doc)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        piece = draw(st.sampled_from(SHARP) | st.text(max_size=4))
        text = text[:at] + piece + text[at + draw(st.integers(min_value=0, max_value=3)) :]
    return text


EXAMPLE = yaml.safe_load((ROOT / "manifest.yaml").read_text())


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


@st.composite
def near_examples(draw: st.DrawFn) -> str:
    """The example manifest with a few values replaced, added or removed: mostly plans, and errors
    deep in valid documents."""
    import copy

    doc = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(keys)] = draw(data)
        else:
            parent[path[-1]] = draw(data)
    return yaml.safe_dump(doc, allow_unicode=True)


class Stats:
    inputs = 0
    plans = 0
    errors = 0


def _run_one(project: Path, text: str) -> None:
    (project / "manifest.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["secrets", "plan", "--stack", "dev"])
    Stats.inputs += 1
    if code == 0:
        Stats.plans += 1
    else:
        Stats.errors += 1
        assert code == 2, f"exit {code}: {err.getvalue()[:500]}"
        assert err.getvalue().startswith("floe: error: "), err.getvalue()[:500]
    assert "Traceback" not in err.getvalue()


def main_fuzz() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default: 10)")
    parser.add_argument("--max-rss-mb", type=int, default=1024, help="memory bound, peak RSS in MB (default: 1024)")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "Pulumi.yaml").write_text("name: floe\nruntime: python\n")
        (project / "Pulumi.dev.yaml").write_text("config:\n  floe:environment: dev\n")
        os.chdir(project)

        @settings(
            max_examples=500, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
        )
        @given(st.one_of(manifests(), near_examples()))
        def fuzz(text: str) -> None:
            _run_one(project, text)

        rounds = 0
        try:
            while time.monotonic() < deadline:
                fuzz()
                rounds += 1
        except Exception:
            traceback.print_exc()
            print(f"FAILED after {Stats.inputs} inputs", file=sys.stderr)
            return 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{'minutes':>8} | {'inputs':>8} | {'plans':>6} | {'clean errors':>12} | {'peak RSS MB':>11}")
    print(f"{args.minutes:>8.1f} | {Stats.inputs:>8} | {Stats.plans:>6} | {Stats.errors:>12} | {peak_mb:>11}")
    if peak_mb > args.max_rss_mb:
        print(f"peak RSS {peak_mb} MB is over the bound of {args.max_rss_mb} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
