"""`pulumi preview` and `pulumi up` of the real program under the real engine, against the floor.

For each size (references), on the local control plane (tools/cluster.py) with the tools that
`make tools` built:
- program: the project with a manifest of N references (the operator chart from a local chart
  repository; a site URL nobody answers: references with no keys make no Infisical call);
- floor: the same engine, provider and cluster, and the same number of Kubernetes objects as bare
  `CustomResource`s (InfisicalSecrets, whose CRD the program's run installed) from a few lines of
  Python: what the engine and the provider cost whatever the program does. The program's Helm
  release (chart download, install, waiting for the operator Deployment) is work the floor does
  not do: it counts against the program.
Each arm is a fresh stack: `pulumi preview`, then `pulumi up --skip-preview`, wall time; then
`pulumi destroy`. Target: program at most 1.3x the floor.

    .venv/bin/python bench/engine_scale.py [--sizes 10 100 1000] [--skip-checkpoints]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]

from cluster import LocalCluster  # noqa: E402
from conftest import Pulumi, chart_repository, pulumi_env  # noqa: E402

MANIFEST = """\
plugins:
  secrets:
    type: infisical
    config:
      site_url: http://127.0.0.1:9
      project_slug: floe-bench
      operator:
        chart_repo: {repo}
secrets:
{refs}"""

FLOOR = """\
import pulumi_kubernetes as k8s

# As many objects as the program's N references make (N InfisicalSecrets, 2 namespaces, the release
# and the identity Secret), each a bare CustomResource (the program's run installed the CRD).
for i in range({n} + 4):
    k8s.apiextensions.CustomResource(f"object-{{i}}", api_version="secrets.infisical.com/v1alpha1",
                                     kind="InfisicalSecret", metadata={{"namespace": "default"}},
                                     spec={{"hostAPI": "http://127.0.0.1:9/api"}})
"""


def _project(root: Path, name: str, program: str, manifest: str | None) -> Path:
    project = root / name
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text() if manifest else
        f"name: {name}\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    (project / "__main__.py").write_text(program)
    (project / "venv").symlink_to(ROOT / "venv")
    if manifest:
        (project / "manifest.yaml").write_text(manifest)
    return project


def _timed(pulumi: Pulumi, *args: str) -> float:
    start = time.perf_counter()
    pulumi(*args, timeout=3600)
    return time.perf_counter() - start


def _arm(pulumi: Pulumi, config: dict[str, str]) -> tuple[float, float]:
    pulumi("stack", "init")
    for key, value in config.items():
        pulumi.config_set(key, value, secret=key.endswith(("ClientId", "ClientSecret")))
    preview = _timed(pulumi, "preview")
    up = _timed(pulumi, "up", "--yes", "--skip-preview")
    return preview, up


def _measure(
    n: int, tmp: Path, bin_dir: Path, cluster: LocalCluster, repo: str, skip_checkpoints: bool
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(preview, up) seconds of the program and of the floor at ``n`` references; both destroyed after."""
    refs = "".join(f"  ref-{i}:\n    path: /bench/ref-{i}\n" for i in range(n))
    arm_dir = tmp / f"n{n}"
    arm_dir.mkdir()
    program = _project(arm_dir, "program", (ROOT / "__main__.py").read_text(), MANIFEST.format(repo=repo, refs=refs))
    floor = _project(arm_dir, "floor", FLOOR.format(n=n), None)
    env = pulumi_env(arm_dir, bin_dir, cluster.kubeconfig)
    if skip_checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    p, f = Pulumi(bin_dir, program, env), Pulumi(bin_dir, floor, env)
    config = {"floe:environment": "dev", "floe:operatorClientId": "bench", "floe:operatorClientSecret": "bench"}
    p_times = _arm(p, config)
    f_times = _arm(f, {})
    f("destroy", "--yes", timeout=3600)
    p("destroy", "--yes", timeout=3600)
    print(f"  {n} references: program preview {p_times[0]:.1f} s, up {p_times[1]:.1f} s; "
          f"floor preview {f_times[0]:.1f} s, up {f_times[1]:.1f} s", file=sys.stderr, flush=True)
    return p_times, f_times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000],
                        help="numbers of references to measure (default: 10 100 1000)")
    parser.add_argument("--skip-checkpoints", action="store_true",
                        help="both arms with PULUMI_SKIP_CHECKPOINTS=true: the engine saves state once, at the end "
                             "(default: off, a checkpoint after every step, as users run it)")
    args = parser.parse_args()
    bin_dir = Path(subprocess.run([str(ROOT / "tools" / "build.sh"), "--dir"], capture_output=True, text=True,
                                  check=True).stdout.strip())
    if not (bin_dir.parent / "complete").exists():
        print("the Go tools are not built: run `make tools`", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cluster = LocalCluster(tmp / "cluster", bin_dir)
        cluster.up()
        (tmp / "charts").mkdir()
        try:
            with chart_repository(tmp / "charts") as repo:
                for n in args.sizes:
                    rows.append((n, *_measure(n, tmp, bin_dir, cluster, repo, args.skip_checkpoints)))
        finally:
            cluster.down()
    print(f"{'references':>10} | {'phase':<7} | {'program s':>9} | {'floor s':>7} | {'ratio':>5}")
    print("-" * 52)
    for n, p_times, f_times in rows:
        for phase, pt, ft in zip(("preview", "up"), p_times, f_times, strict=True):
            print(f"{n:>10} | {phase:<7} | {pt:>9.1f} | {ft:>7.1f} | {pt / ft:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
