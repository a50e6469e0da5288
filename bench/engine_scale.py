"""`pulumi preview` and `pulumi up` of the real program under the real engine, against floors.

For each size (references), on the local control plane (tools/harness/cluster.py) with the tools that
`make tools` built:
- program: the project with a manifest of N references (the operator chart from a local chart
  repository; a site URL nobody answers: references with no keys make no Infisical call);
- floors: the same engine, provider and cluster, and the same Kubernetes objects as bare
  `CustomResource`s from a few lines of Python: what the engine and the provider cost whatever the
  program does. Four:
  - "chart CRDs + chart + same objects": the work the program does, written bare: the chart's CRDs
    rendered by a bare `helm.v3.Chart` and applied as resources of their own, then the release and
    the objects below (all waiting for the CRDs, as the program's do);
  - "chart + same objects": the program's operator chart as a bare `helm.v3.Release` with the same
    values, plus the objects below: what installing the chart costs whatever the program does;
  - "same objects": each of the program's sync objects (InfisicalStaticSecrets, or InfisicalSecrets
    with `api: v1alpha1`, and the connection and auth) with its metadata and spec (in namespace
    `default`), plus 4 small objects for its namespaces, release and identity Secret;
  - "minimal": as many InfisicalSecrets with a one-field spec, for comparison.
Each arm is a fresh stack: `pulumi preview` on an empty cluster, `pulumi up --skip-preview`, then
`pulumi preview` of the converged stack (the pull-request case), wall time (each preview the median
of --repeat runs); then `pulumi destroy`.
The offline `floe secrets plan` of the same manifest is timed beside them.

    .venv/bin/python bench/engine_scale.py [--sizes 10 50 1000] [--repeat 3] [--skip-checkpoints]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tests")]

from harness import Pulumi, pulumi_env  # noqa: E402
from harness.cluster import LocalCluster  # noqa: E402
from harness.localenv import built_tools, chart_repository  # noqa: E402
from harness.stack import Ran  # noqa: E402

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

import pulumi
import pulumi_kubernetes as k8s

# The program's sync objects (objects.json), then 4 small objects for its 2 namespaces, the release
# and the identity Secret: each a bare CustomResource. With release.json, also the program's chart as
# a bare Release with the same values; with "crds" in it, the chart's CRDs too, rendered by a bare
# Chart and applied as resources of their own before the objects (what the program does); without,
# the objects rely on CRDs that an earlier run left in the cluster.
try:
    release = json.load(open("release.json"))
except FileNotFoundError:
    release = None
crds = None
if release and release.get("crds"):
    def only_crds(obj, opts):
        if obj.get("kind") != "CustomResourceDefinition":
            obj.clear()
            obj.update(apiVersion="v1", kind="List")

    chart = k8s.helm.v3.Chart("floor-crds", k8s.helm.v3.ChartOpts(
        chart=release["chart"], version=release["version"], fetch_opts=k8s.helm.v3.FetchOpts(repo=release["repo"]),
        values=release["crds"], transformations=[only_crds]))
    crds = chart.resources.apply(lambda created: list(created.values()))
objects = json.load(open("objects.json")) + [
    {"apiVersion": "secrets.infisical.com/v1alpha1", "kind": "InfisicalSecret", "metadata": {"name": f"extra-{i}"},
     "spec": {"hostAPI": "http://127.0.0.1:9/api"}} for i in range(4)]
for obj in objects:
    k8s.apiextensions.CustomResource(f"{obj['kind']}-{obj['metadata']['name']}", api_version=obj["apiVersion"],
                                     kind=obj["kind"], metadata={**obj["metadata"], "namespace": "default"},
                                     spec=obj["spec"], opts=pulumi.ResourceOptions(depends_on=crds))
if release:
    k8s.helm.v3.Release("floor-operator", chart=release["chart"], version=release["version"],
                        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=release["repo"]),
                        namespace="floor-operator", create_namespace=True, values=release["values"],
                        opts=pulumi.ResourceOptions(depends_on=crds))
"""


CRD_FLOOR = "chart CRDs + chart + same objects"
FLOORS = (CRD_FLOOR, "chart + same objects", "same objects", "minimal")
SYNC_KINDS = ("InfisicalSecret", "InfisicalStaticSecret", "InfisicalConnection", "InfisicalAuth")


def _floor_objects(manifest: str, minimal: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The program's sync objects as the plan has them (``minimal``: as many InfisicalSecrets with a
    one-field spec), and its operator release (chart, version, repo, values)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.yaml").write_text(manifest)
        plan = build_plan(
            load_manifest(Path(tmp) / "manifest.yaml"), parse_stack_config("dev", {"environment": "dev"}, "bench")
        )
    objects = [o.manifest() for o in plan.kube_objects() if o.kind in SYNC_KINDS]
    assert plan.operator is not None, "the bench manifest is of type infisical"
    release = plan.operator.release
    chart = {
        "chart": release.chart,
        "version": release.version,
        "repo": release.repo,
        "values": dict(release.values),
        "crds": dict(plan.operator.crds.values),
    }
    if minimal:
        return [
            {
                "apiVersion": "secrets.infisical.com/v1alpha1",
                "kind": "InfisicalSecret",
                "metadata": {"name": o["metadata"]["name"]},
                "spec": {"hostAPI": "http://127.0.0.1:9/api"},
            }
            for o in objects
        ], chart
    return [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "metadata": {k: v for k, v in o["metadata"].items() if k != "namespace"},
            "spec": o["spec"],
        }
        for o in objects
    ], chart


def _project(root: Path, name: str, program: str, manifest: str | None) -> Path:
    project = root / name
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        (ROOT / "Pulumi.yaml").read_text()
        if manifest
        else f"name: {name}\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n"
    )
    (project / "__main__.py").write_text(program)
    (project / "venv").symlink_to(ROOT / "venv")
    if manifest:
        (project / "manifest.yaml").write_text(manifest)
    return project


def _timed(operation: Callable[[], Ran]) -> float:
    """The wall time of the operation's own command (not the reads Automation makes around it)."""
    return operation().seconds


PHASES = ("preview", "up", "preview again")  # on an empty cluster, up, then on the converged stack


REPEAT = 3  # previews per phase; the median is reported (one preview varies by about ±25%)


def _arm(pulumi: Pulumi, config: dict[str, str], repeat: int) -> tuple[float, float, float]:
    pulumi.init((key, value, key.endswith(("ClientId", "ClientSecret"))) for key, value in config.items())
    preview = statistics.median(_timed(lambda: pulumi.preview(timeout=3600)) for _ in range(repeat))
    up = _timed(lambda: pulumi.up(timeout=3600))
    again = [_timed(lambda: pulumi.preview(expect_no_changes=True, timeout=3600)) for _ in range(repeat)]
    return preview, up, statistics.median(again)


def _measure(
    n: int, tmp: Path, bin_dir: Path, cluster: LocalCluster, repo: str, skip_checkpoints: bool, repeat: int
) -> dict[str, tuple[float, ...]]:
    """(preview, up) seconds of the program and of each floor at ``n`` references; all destroyed after."""
    refs = "".join(f"  ref-{i}:\n    path: /bench/ref-{i}\n" for i in range(n))
    manifest = MANIFEST.format(repo=repo, refs=refs)
    arm_dir = tmp / f"n{n}"
    arm_dir.mkdir()
    env = pulumi_env(arm_dir, bin_dir, cluster.kubeconfig)
    if skip_checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    program = Pulumi(bin_dir, _project(arm_dir, "program", (ROOT / "__main__.py").read_text(), manifest), env)
    config = {"floe:environment": "dev", "floe:operatorClientId": "bench", "floe:operatorClientSecret": "bench"}
    times: dict[str, tuple[float, ...]] = {}

    def floor(name: str) -> None:
        project = _project(arm_dir, name.replace(" ", "-").replace("+", "and"), FLOOR, None)
        objects, release = _floor_objects(manifest, minimal=name == "minimal")
        (project / "objects.json").write_text(json.dumps(objects))
        if name != CRD_FLOOR:
            release.pop("crds")
        if "chart" in name:
            (project / "release.json").write_text(json.dumps(release))
        pulumi = Pulumi(bin_dir, project, env)
        times[name] = _arm(pulumi, {}, repeat)
        pulumi.destroy(timeout=3600)

    # The CRD floor first, on an empty cluster; its destroy deletes its CRDs, so the program's first
    # preview also finds none. The program keeps its CRDs on destroy, which the other floors use.
    floor(CRD_FLOOR)
    times["program"] = _arm(program, config, repeat)
    start = time.perf_counter()
    subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "floe"),
            "secrets",
            "plan",
            "--stack",
            "dev",
            "--manifest",
            str(program.project / "manifest.yaml"),
        ],
        cwd=program.project,
        capture_output=True,
        check=True,
    )
    times["floe secrets plan"] = (time.perf_counter() - start,)
    for name in FLOORS[1:]:
        floor(name)
    program.destroy(timeout=3600)
    _delete_operator_crds(bin_dir, cluster)  # kept by the program's destroy: the next size starts empty
    shown = "; ".join(f"{arm} " + ", ".join(f"{t:.1f} s" for t in ts) for arm, ts in times.items())
    print(f"  {n} references: {shown}", file=sys.stderr, flush=True)
    return times


def _delete_operator_crds(bin_dir: Path, cluster: LocalCluster) -> None:
    kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    listed = subprocess.run([*kubectl, "get", "crd", "-o", "name"], capture_output=True, text=True, check=True)
    names = [n for n in listed.stdout.split() if n.endswith(".secrets.infisical.com")]
    if names:
        subprocess.run([*kubectl, "delete", "--wait", *names], capture_output=True, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10, 50, 1000],
        help="numbers of references to measure (default: 10 50 1000)",
    )
    parser.add_argument(
        "--skip-checkpoints",
        action="store_true",
        help="both arms with PULUMI_SKIP_CHECKPOINTS=true: the engine saves state once, at the end "
        "(default: off, a checkpoint after every step, as users run it)",
    )
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help=f"previews per phase, median reported (default: {REPEAT})"
    )
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
                    rows.append((n, _measure(n, tmp, bin_dir, cluster, repo, args.skip_checkpoints, args.repeat)))
        finally:
            cluster.down()
    header = [
        "references",
        "phase",
        "program s",
        "chart CRDs+chart+CRs floor s",
        "ratio",
        "chart+CRs floor s",
        "ratio",
        "CRs floor s",
        "ratio",
        "minimal s",
        "floe plan s",
    ]
    print(" | ".join(header))
    print(" | ".join("-" * len(h) for h in header))
    for n, times in rows:
        for i, phase in enumerate(PHASES):
            program = times["program"][i]
            floors = [times[arm][i] for arm in FLOORS]
            cells = [str(n), phase, f"{program:.1f}"]
            for t in floors[:3]:
                cells += [f"{t:.1f}", f"{program / t:.2f}"]
            cells += [f"{floors[3]:.1f}", f"{times['floe secrets plan'][0]:.1f}" if i == 0 else ""]
            print(" | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
