"""Start-up and `floe secrets validate` cost, as a user at a shell would see them.

Each command runs as a fresh process (``floe --help``; ``floe secrets validate`` for 100
references in 10 folders against the Infisical double answering after 20 ms), beside the floor
for start-up: ``python -c "import yaml, pydantic"``, the two libraries any manifest reader loads.
validate's minimum is 11 requests: one login and one list per folder.

    .venv/bin/python bench/cli.py [--repeat 5] [--refs 100] [--folders 10] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from infisical_double import DoubleServer, InfisicalDouble, Secret

ROOT = Path(__file__).resolve().parents[1]
FLOE = str(Path(sys.executable).with_name("floe"))
CLIENT = ("bench-client-id", "bench-client-secret")


def manifest(refs: int, folders: int) -> str:
    lines = [
        "plugins:",
        "  secrets:",
        "    type: infisical",
        "    config: {site_url: https://infisical.company.com, project_slug: floe-platform}",
        "secrets:",
    ]
    for i in range(refs):
        lines += [f"  ref-{i:03d}:", f"    path: /bench/folder-{i % folders:02d}", "    keys:", "      KEY_A: {}"]
    return "\n".join(lines) + "\n"


def timed(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the median counts (default: 5)")
    parser.add_argument("--refs", type=int, default=100, help="secret references in the manifest (default: 100)")
    parser.add_argument("--folders", type=int, default=10, help="Infisical folders they read (default: 10)")
    parser.add_argument(
        "--latency", type=float, default=0.02, help="seconds the Infisical double waits per request (default: 0.02)"
    )
    args = parser.parse_args()

    double = InfisicalDouble(latency=args.latency)
    double.add_identity(*CLIENT)
    project = double.add_project("floe-platform")
    for f in range(args.folders):
        double.folders.update({(project.id, "dev", "/bench"), (project.id, "dev", f"/bench/folder-{f:02d}")})
        double.secrets[(project.id, "dev", f"/bench/folder-{f:02d}", "KEY_A")] = Secret(f"id-{f}", "v")

    with tempfile.TemporaryDirectory() as tmp, DoubleServer(double):
        work = Path(tmp)
        for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
            shutil.copy(ROOT / name, work / name)
        (work / "manifest.yaml").write_text(manifest(args.refs, args.folders))
        env = {
            **os.environ,
            "INFISICAL_HOST": double.url,
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID": CLIENT[0],
            "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET": CLIENT[1],
        }
        floor = timed([sys.executable, "-c", "import yaml, pydantic"], work, env, args.repeat)
        help_s = timed([FLOE, "--help"], work, env, args.repeat)
        double.requests.clear()
        validate_s = timed([FLOE, "secrets", "validate", "--stack", "dev"], work, env, args.repeat)
        per_run = len(double.requests) // args.repeat

    minimum = 1 + args.folders
    print(f"{args.refs} references in {args.folders} folders, {args.latency * 1000:.0f} ms per request at the double\n")
    print(f"{'command':<34} {'seconds':>8} {'requests':>9} {'minimum':>8} {'vs floor':>9}")
    print(f"{'python -c import yaml, pydantic':<34} {floor:>8.3f} {'-':>9} {'-':>8} {'1.00x':>9}")
    print(f"{'floe --help':<34} {help_s:>8.3f} {'-':>9} {'-':>8} {help_s / floor:>8.2f}x")
    print(f"{'floe secrets validate':<34} {validate_s:>8.3f} {per_run:>9} {minimum:>8} {validate_s / floor:>8.2f}x")
    print(f"\nrequest latency alone: {minimum} x {args.latency * 1000:.0f} ms = {minimum * args.latency:.2f} s")


if __name__ == "__main__":
    main()
