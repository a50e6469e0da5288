"""What the operator costs the Infisical server, and whether every Secret stays current, at scale.

On the local control plane (tools/harness/cluster.py), the real Infisical server (../shared) in production
mode (its rate limits on: 40 reads of secrets a minute per client address) and the Infisical
operator v0.11.5 out of cluster (the tools `make tools` built). For each N (references, ten per
folder) and each way the plan reads (v1alpha1: one InfisicalSecret per reference; v1beta1 with
operator.sources reference: one InfisicalStaticSecret per reference, folder: one per folder,
prefix: one recursive read for all), it reports:
- reads a minute the operator made (the server's own log of /api/v4/secrets and /api/v3/secrets/raw
  requests, the most in any 60 s) and how many the server refused;
- from `pulumi up` done to every Secret filled;
- from one value changed (in the first folder) to every Secret of its folder holding it; the floor
  is one refresh interval (a change waits for the next refresh).
A row whose reads would pass the server's limit by the plan's own arithmetic is still run when
--all is given; by default it is reported as the plan's warning, with its arithmetic.

    .venv/bin/python bench/operator_load.py [--sizes 10,100,1000] [--interval 20] [--all]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]

from harness import Pulumi, make_project, pulumi_env  # noqa: E402
from harness.cluster import LocalCluster  # noqa: E402
from harness.localenv import (  # noqa: E402
    Infisical,
    built_tools,
    chart_repository,
    infisical_server,
    served_since,
    server_in_production,
)

ENV, NAMESPACE, PER_FOLDER, LIMIT = "dev", "floe-jobs", 10, 40
MODES = (("v1alpha1", "reference"), ("v1beta1", "reference"), ("v1beta1", "folder"), ("v1beta1", "prefix"))
READ_ROUTES = ("/api/v4/secrets", "/api/v3/secrets/raw?")  # the operator's list routes (v1beta1, v1alpha1)


@dataclass
class Row:
    n: int
    mode: str
    planned: int  # reads per interval, by the plan
    per_minute: int | None = None
    refused: int | None = None
    fill: float | None = None
    follow: float | None = None
    note: str = ""


def manifest(infisical: Infisical, repo: str, api: str, sources: str, n: int, interval: int, tag: str) -> str:
    return yaml.safe_dump(
        {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": infisical.host,
                        "project_slug": infisical.project_slug,
                        "resync_interval": f"{interval}s",
                        "read_budget": 100000,
                        "operator": {
                            "chart_repo": repo,
                            "api": api,
                            **({"sources": sources} if api == "v1beta1" else {}),
                        },
                    },
                }
            },
            "secrets": {
                f"ref-{i:04d}": {
                    "path": f"/{infisical.prefix}/{tag}/folder-{i // PER_FOLDER}",
                    "namespace": NAMESPACE,
                    "keys": {"KEY": {}},
                }
                for i in range(n)
            },
        }
    )


def in_cluster(cluster: LocalCluster) -> dict[str, str]:
    items = json.loads(cluster.kubectl("get", "secrets", "-n", NAMESPACE, "-o", "json"))["items"]
    return {
        s["metadata"]["name"]: base64.b64decode(s["data"]["KEY"]).decode()
        for s in items
        if s["metadata"]["name"].startswith("ref-") and "KEY" in (s.get("data") or {})
    }


def wait_for(cluster: LocalCluster, want: dict[str, str], timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        have = in_cluster(cluster)
        if all(have.get(k) == v for k, v in want.items()):
            return time.monotonic() - start
        time.sleep(1)
    return None


def measure(
    row: Row,
    api: str,
    sources: str,
    args: argparse.Namespace,
    tmp: Path,
    bin_dir: Path,
    cluster: LocalCluster,
    repo: str,
    infisical: Infisical,
    log: Path,
) -> None:
    tag = f"{api}-{sources}-{row.n}"
    work = tmp / tag
    work.mkdir()
    project = make_project(
        work, bin_dir, cluster.kubeconfig, manifest(infisical, repo, api, sources, row.n, args.interval, tag)
    )
    pulumi = Pulumi(bin_dir, project, pulumi_env(work, bin_dir, cluster.kubeconfig))
    pulumi.init(infisical.stack_config(ENV, "floe-local"))
    folders = -(-row.n // PER_FOLDER)
    values: dict[int, str] = {}

    def set_value(f: int) -> None:
        values[f] = secrets.token_hex(8)
        infisical.set(ENV, f"/{infisical.prefix}/{tag}/folder-{f}", "KEY", values[f])
        time.sleep(60 / (LIMIT - 5))  # writes have a limit of their own: stay under it

    def expected(of: range) -> dict[str, str]:
        return {f"ref-{i:04d}": values[i // PER_FOLDER] for i in of}

    try:
        for f in range(folders):
            set_value(f)
        pulumi.up(timeout=3600)
        # As the chart's ServiceAccount, which each stack's release makes (and its destroy removes).
        cluster.start_operator()
        offset, started = log.stat().st_size, time.monotonic()
        row.fill = wait_for(cluster, expected(range(row.n)), 10 * args.interval + 120)
        time.sleep(args.interval / 3)  # the change lands a third into a refresh cycle
        set_value(0)  # one changed value: every Secret of its folder must follow
        row.follow = wait_for(cluster, expected(range(min(PER_FOLDER, row.n))), 10 * args.interval + 60)
        time.sleep(max(0.0, 60 - (time.monotonic() - started)))  # at least a minute of reads to count
        reads = [s for s in served_since(log, offset) if s.method == "GET" and s.url.startswith(READ_ROUTES)]
        row.refused = sum(1 for r in reads if r.status != 200)
        row.per_minute = max((sum(1 for r in reads if t <= r.at < t + 60) for t in (r.at for r in reads)), default=0)
    finally:
        cluster.stop_operator()
        pulumi.destroy(remove=True, check=False, timeout=3600)
        names = [f"ref-{i:04d}" for i in range(row.n)]
        for start in range(0, len(names), 200):
            cluster.kubectl(
                "delete", "secret", *names[start : start + 200], "-n", NAMESPACE, "--ignore-not-found", "--wait=false"
            )


def planned_reads(sources: str, n: int) -> int:
    return {"reference": n, "folder": -(-n // PER_FOLDER), "prefix": 1}[sources]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="numbers of references (default: 10,100,1000)")
    parser.add_argument("--interval", type=int, default=20, help="resync interval in seconds (default: 20)")
    parser.add_argument("--all", action="store_true", help="also run the rows the plan says exceed the limit")
    args = parser.parse_args()
    bin_dir = built_tools()
    if bin_dir is None:
        print("the Go tools are not built: run `make tools`", file=sys.stderr)
        return 2
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name, infisical_server() as credentials, server_in_production() as log:
        tmp = Path(tmp_name)
        infisical = Infisical.from_credentials(credentials, prefix=f"bench-{secrets.token_hex(4)}")
        cluster = LocalCluster(tmp / "cluster", bin_dir)
        cluster.up()
        (tmp / "charts").mkdir()
        try:
            with chart_repository(tmp / "charts") as repo:
                for n in (int(s) for s in args.sizes.split(",")):
                    for api, sources in MODES:
                        row = Row(n, f"{api} {sources}" if api == "v1beta1" else api, planned_reads(sources, n))
                        rows.append(row)
                        if row.planned * 60 / args.interval > LIMIT and not args.all:
                            row.note = (
                                f"not run: {row.planned} reads every {args.interval}s is "
                                f"{row.planned * 60 / args.interval:.0f} a minute, over {LIMIT} "
                                "(the plan warns; a protected up refuses)"
                            )
                            continue
                        print(f"measuring {n} references, {row.mode} ...", file=sys.stderr, flush=True)
                        measure(row, api, sources, args, tmp, bin_dir, cluster, repo, infisical, log)
        finally:
            cluster.down()
            infisical.remove_prefix(ENV)
    print(
        f"references ten per folder, resync interval {args.interval}s, the server in production mode "
        f"({LIMIT} reads a minute per address), 2 cores"
    )
    print(
        f"{'refs':>5} | {'reads':<16} | {'planned/interval':>16} | {'reads/min':>9} | {'refused':>7} | "
        f"{'first fill s':>12} | {'follow s':>8} | {'floor s':>7}"
    )
    print("-" * 104)
    for r in rows:

        def show(v: Any) -> str:
            return "-" if v is None else f"{v:.0f}" if isinstance(v, float) else str(v)

        print(
            f"{r.n:>5} | {r.mode:<16} | {r.planned:>16} | {show(r.per_minute):>9} | {show(r.refused):>7} | "
            f"{show(r.fill):>12} | {show(r.follow):>8} | {args.interval:>7}" + (f"  {r.note}" if r.note else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
