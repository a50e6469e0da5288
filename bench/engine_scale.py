"""`pulumi preview` and `pulumi up` of the real program under the real engine, against the floor.

For each size (references), on the local control plane (tools/cluster.py) with the tools that
`make tools` built:
- program: the project with a manifest of N references (the operator chart from a local chart
  repository; a site URL nobody answers: references with no keys make no Infisical call);
- floor: the same engine, provider and cluster, and the same Kubernetes objects as bare
  `CustomResource`s from a few lines of Python: what the engine and the provider cost whatever the
  program does. Two floors:
  - "same objects" (the target's): each of the program's InfisicalSecrets with its metadata and
    spec (in namespace `default`, beside the program's), plus 4 small objects for its namespaces,
    release and identity Secret. The state the engine writes is then the same size as the
    program's, so the ratio is the program's own cost;
  - "minimal": the same number of InfisicalSecrets with a one-field spec, for comparison: the
    program's objects carry about twice the state, and a file backend writes the whole state
    after every step.
  The program's Helm release (chart download, install, waiting for the operator Deployment) is
  work no floor does: it counts against the program.
Each arm is a fresh stack: `pulumi preview`, then `pulumi up --skip-preview`, wall time; then
`pulumi destroy`. Target: program at most 1.3x the floor.

    .venv/bin/python bench/engine_scale.py [--sizes 10 100 1000] [--skip-checkpoints]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]

from cluster import LocalCluster  # noqa: E402
from conftest import Pulumi, pulumi_env  # noqa: E402
from localenv import built_tools, chart_repository  # noqa: E402

from floe_infra import build_plan, load_manifest, parse_stack_config  # noqa: E402

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
import json

import pulumi_kubernetes as k8s

# The program's InfisicalSecrets (objects.json), then 4 small objects for its 2 namespaces, the
# release and the identity Secret: each a bare CustomResource (the program's run installed the CRD).
objects = json.load(open("objects.json")) + [{"metadata": {"name": f"extra-{i}"},
                                              "spec": {"hostAPI": "http://127.0.0.1:9/api"}} for i in range(4)]
for obj in objects:
    k8s.apiextensions.CustomResource(obj["metadata"]["name"], api_version="secrets.infisical.com/v1alpha1",
                                     kind="InfisicalSecret", metadata={**obj["metadata"], "namespace": "default"},
                                     spec=obj["spec"])
"""


FLOORS = ("same objects", "minimal")


def _floor_objects(manifest: str, minimal: bool) -> list[dict[str, Any]]:
    """The program's InfisicalSecrets as the plan has them (``minimal``: names and a one-field spec)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.yaml").write_text(manifest)
        plan = build_plan(load_manifest(Path(tmp) / "manifest.yaml"),
                          parse_stack_config("dev", {"environment": "dev"}, "bench"))
    objects = [o.manifest() for o in plan.kube_objects() if o.kind == "InfisicalSecret"]
    if minimal:
        return [{"metadata": {"name": o["metadata"]["name"]}, "spec": {"hostAPI": "http://127.0.0.1:9/api"}}
                for o in objects]
    return [{"metadata": {k: v for k, v in o["metadata"].items() if k != "namespace"}, "spec": o["spec"]}
            for o in objects]


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


def _measure(n: int, tmp: Path, bin_dir: Path, cluster: LocalCluster, repo: str,
             skip_checkpoints: bool) -> dict[str, tuple[float, float]]:
    """(preview, up) seconds of the program and of each floor at ``n`` references; all destroyed after."""
    refs = "".join(f"  ref-{i}:\n    path: /bench/ref-{i}\n" for i in range(n))
    manifest = MANIFEST.format(repo=repo, refs=refs)
    arm_dir = tmp / f"n{n}"
    arm_dir.mkdir()
    env = pulumi_env(arm_dir, bin_dir, cluster.kubeconfig)
    if skip_checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    program = Pulumi(bin_dir, _project(arm_dir, "program", (ROOT / "__main__.py").read_text(), manifest), env)
    times = {"program": _arm(program, {"floe:environment": "dev", "floe:operatorClientId": "bench",
                                       "floe:operatorClientSecret": "bench"})}
    for floor in FLOORS:
        project = _project(arm_dir, floor.replace(" ", "-"), FLOOR, None)
        (project / "objects.json").write_text(json.dumps(_floor_objects(manifest, minimal=floor == "minimal")))
        pulumi = Pulumi(bin_dir, project, env)
        times[floor] = _arm(pulumi, {})
        pulumi("destroy", "--yes", timeout=3600)
    program("destroy", "--yes", timeout=3600)
    print(f"  {n} references: " + "; ".join(f"{arm} preview {t[0]:.1f} s, up {t[1]:.1f} s" for arm, t in times.items()),
          file=sys.stderr, flush=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000],
                        help="numbers of references to measure (default: 10 100 1000)")
    parser.add_argument("--skip-checkpoints", action="store_true",
                        help="both arms with PULUMI_SKIP_CHECKPOINTS=true: the engine saves state once, at the end "
                             "(default: off, a checkpoint after every step, as users run it)")
    args = parser.parse_args()
    bin_dir = built_tools()
    if bin_dir is None:
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
                    rows.append((n, _measure(n, tmp, bin_dir, cluster, repo, args.skip_checkpoints)))
        finally:
            cluster.down()
    print(f"{'references':>10} | {'phase':<7} | {'program s':>9} | {'floor s':>7} | {'ratio':>5} | "
          f"{'minimal floor s':>15} | {'ratio':>5}")
    print("-" * 80)
    for n, times in rows:
        for i, phase in enumerate(("preview", "up")):
            pt, ft, mt = times["program"][i], times["same objects"][i], times["minimal"][i]
            print(f"{n:>10} | {phase:<7} | {pt:>9.1f} | {ft:>7.1f} | {pt / ft:>5.2f} | {mt:>15.1f} | {pt / mt:>5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
