"""How long a value takes to reach the Kubernetes Secret, against the floor: the resync interval.

On the local control plane (tools/harness/cluster.py), the real Infisical server (../shared) and the
Infisical operator v0.11.5 run out of cluster (the tools `make tools` built), for each operator API:
- create: from `pulumi up` finishing (a stack of N references, each with a key the stack writes) to
  every reference's Secret holding its value. The operator watches its objects, so this needs no
  resync: the floor is 0 s plus its reconcile;
- rotation: from a value changed in Infisical to the Secret holding it, ROUNDS times. The operator
  polls Infisical every resync interval, so a change waits up to one interval: the floor is the
  interval (uniformly 0 to one interval after the change, half an interval on average); each
  change is made at a random point of the cycle.
External Secrets Operator is not measured: its controller is not built here (see the README).

    .venv/bin/python bench/sync_latency.py [--references 3] [--interval 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]

from harness import Pulumi, make_project, pulumi_env  # noqa: E402
from harness.cluster import LocalCluster  # noqa: E402
from harness.localenv import Infisical, built_tools, chart_repository, infisical_server  # noqa: E402

ENV = "dev"
NAMESPACE = "floe-jobs"


def manifest(infisical: Infisical, repo: str, api: str, n: int, interval: int) -> dict[str, Any]:
    return {
        "plugins": {
            "secrets": {
                "type": "infisical",
                "config": {
                    "site_url": infisical.host,
                    "project_slug": infisical.project_slug,
                    "resync_interval": f"{interval}s",
                    "operator": {"chart_repo": repo, "api": api},
                },
            }
        },
        "secrets": {
            f"bench-{i}": {
                "path": f"/{infisical.prefix}/{api}/ref-{i}",
                "keys": {"VALUE": {"generate": {"length": 16}}},
            }
            for i in range(n)
        },
    }


def secret_value(cluster: LocalCluster, name: str) -> str | None:
    out = cluster.kubectl("get", "secret", name, "-n", NAMESPACE, "-o", "json", "--ignore-not-found")
    data = json.loads(out).get("data", {}) if out.strip() else {}
    return base64.b64decode(data["VALUE"]).decode() if "VALUE" in data else None


def wait_for(cluster: LocalCluster, want: dict[str, str], timeout: float) -> float:
    start = time.monotonic()
    pending = dict(want)
    while pending:
        pending = {name: v for name, v in pending.items() if secret_value(cluster, name) != v}
        if time.monotonic() - start > timeout:
            raise SystemExit(f"not synced within {timeout:.0f}s: {sorted(pending)}")
        if pending:
            time.sleep(0.1)
    return time.monotonic() - start


def measure(
    api: str, args: argparse.Namespace, tmp: Path, bin_dir: Path, cluster: LocalCluster, repo: str, infisical: Infisical
) -> tuple[float, list[float]]:
    work = tmp / api
    work.mkdir()
    project = make_project(work, bin_dir, cluster.kubeconfig, "")
    text = yaml.safe_dump(manifest(infisical, repo, api, args.references, args.interval))
    (project / "manifest.yaml").write_text(text)
    pulumi = Pulumi(bin_dir, project, pulumi_env(work, bin_dir, cluster.kubeconfig))
    pulumi.init(infisical.stack_config(ENV, "floe-local"))
    try:
        pulumi.up()
        names = [f"bench-{i}" for i in range(args.references)]
        want = {n: infisical.get(ENV, f"/{infisical.prefix}/{api}/ref-{i}", "VALUE") or "" for i, n in enumerate(names)}
        create = wait_for(cluster, want, 120)
        rotations = []
        for _ in range(args.rounds):
            # A change lands at a random point of the operator's cycle, as a person's does (right
            # after a sync it would always wait a whole interval).
            time.sleep(random.uniform(0, args.interval))
            value = secrets.token_hex(8)
            infisical.set(ENV, f"/{infisical.prefix}/{api}/ref-0", "VALUE", value)
            rotations.append(wait_for(cluster, {"bench-0": value}, 10 * args.interval + 60))
        return create, rotations
    finally:
        pulumi.destroy(remove=True, check=False)
        for name in [f"bench-{i}" for i in range(args.references)]:
            cluster.kubectl("delete", "secret", name, "-n", NAMESPACE, "--ignore-not-found")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--references", type=int, default=3, help="references in the stack (default: 3)")
    parser.add_argument("--interval", type=int, default=5, help="resync interval in seconds, at least 5 (default: 5)")
    parser.add_argument("--rounds", type=int, default=5, help="rotations measured per API (default: 5)")
    args = parser.parse_args()
    bin_dir = built_tools()
    if bin_dir is None:
        print("the Go tools are not built: run `make tools`", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name, infisical_server() as credentials:
        tmp = Path(tmp_name)
        infisical = Infisical.from_credentials(credentials, prefix=f"bench-{secrets.token_hex(4)}")
        cluster = LocalCluster(tmp / "cluster", bin_dir)
        cluster.up()
        (tmp / "charts").mkdir()
        try:
            cluster.start_operator()
            with chart_repository(tmp / "charts") as repo:
                for api in ("v1alpha1", "v1beta1"):
                    print(f"measuring {api} ...", file=sys.stderr, flush=True)
                    rows.append((api, measure(api, args, tmp, bin_dir, cluster, repo, infisical)))
        finally:
            cluster.down()
            infisical.remove_prefix(ENV)
    print(f"{args.references} references, resync interval {args.interval}s, {args.rounds} rotations, 2 cores")
    print(f"{'operator api':<12} | {'phase':<38} | {'measured s':>18} | {'floor s':>7}")
    print("-" * 86)
    for api, (create, rotations) in rows:
        print(f"{api:<12} | {'pulumi up done -> every Secret filled':<38} | {create:>18.1f} | {0:>7.1f}")
        spread = f"{statistics.median(rotations):.1f} ({min(rotations):.1f}-{max(rotations):.1f})"
        print(f"{api:<12} | {'rotation in Infisical -> Secret':<38} | {spread:>18} | {args.interval:>7.1f}")
    print(f"{'ESO':<12} | {'(not measured: no ESO controller here)':<38} | {'-':>18} | {'-':>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
