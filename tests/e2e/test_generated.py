"""generate: keys under the real engine, the random provider built by `make tools`, the real
Infisical server and the real operator, on a protected prod stack: a stack made by the previous
release (its values made by GeneratedPassword) moves to RandomPassword without one value changing,
and a rotation mark gives exactly one key a new value that reaches Infisical, the Secret and the
annotated workload. Steps run in order on one stack."""

from __future__ import annotations

import json
import string
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, Pulumi, ensure_namespaces, eventually, pulumi_env, rolled_out_in, stop_operator, unavailable
from harness.cluster import LocalCluster
from harness.localenv import Infisical
from harness.stack import Ran

# Its steps run the former release's program and change the program's files: a failed step's
# stack cannot be put back by its manifest and config alone.
pytestmark = [pytest.mark.e2e, pytest.mark.no_restore]

PREVIOUS_RELEASE = "eaee2fe0aeb89e8e8c7e881956abd018a83fd33f"
"""The last commit whose program made generate: values with GeneratedPassword."""
STACK = ENV = "prod"
JOBS, OPERATOR_NS, REF = "floe-jobs", "infisical", "app-credentials"
POLICY = str(ROOT / "policy")
LEGACY = "pulumi-python:dynamic/floe:GeneratedPassword"
RANDOM = "random:index/randomPassword:RandomPassword"
VALUE = "pulumi-python:dynamic/infisical:SecretValue"
MARK = f"secrets.infisical.com/managed-secret.{REF}"  # the operator's, on the pod template


def steps(preview: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(type, name) -> the ops of each resource the preview changes."""
    found: dict[tuple[str, str], set[str]] = {}
    for step in preview["steps"]:
        if step["op"] != "same":
            head, name = step["urn"].rsplit("::", 1)
            found.setdefault((head.rsplit("::", 1)[1].rsplit("$", 1)[-1], name), set()).add(step["op"])
    return found


@dataclass
class Generated:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    env: dict[str, str]  # the current release's (no PYTHONPATH)
    values: dict[str, str] = field(default_factory=dict)  # key -> value made by the previous release

    @property
    def folder(self) -> str:
        return f"/{self.infisical.prefix}/gen/app"

    def in_infisical(self) -> dict[str, str | None]:
        return {k: self.infisical.get(ENV, self.folder, k) for k in ("APP_PASSWORD", "APP_KEY")}

    def secret(self) -> dict[str, str] | None:
        return self.cluster.secret(JOBS, REF)

    def resources(self) -> list[dict[str, Any]]:
        return self.pulumi.resources()

    def results(self, kind: str) -> dict[str, str]:
        """Each password of ``kind`` in the state: its key (the name's last part) -> its result."""
        return {
            r["urn"].rsplit(":", 1)[1]: json.loads(r["outputs"]["result"]["plaintext"])
            for r in self.resources()
            if r["type"] == kind
        }

    def stored(self) -> str:
        """Every file the file backend holds for the stack: the state, its backup and its history."""
        backend = Path(self.env["PULUMI_BACKEND_URL"].removeprefix("file://")) / ".pulumi"
        return "\n".join(p.read_text(errors="replace") for p in sorted(backend.rglob("*")) if p.is_file())


def manifest(infisical: Infisical, chart_repo: str, folder: str) -> str:
    return yaml.safe_dump(
        {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": infisical.host,
                        "project_slug": infisical.project_slug,
                        "resync_interval": "5s",
                        "operator": {"chart_repo": chart_repo},
                    },
                }
            },
            "secrets": {
                REF: {
                    "path": folder,
                    "keys": {
                        "APP_PASSWORD": {"generate": {"length": 24}},
                        "APP_KEY": {"generate": {"length": 32, "special": False}},
                    },
                }
            },
        },
        sort_keys=False,
    )


def previous_release(into: Path) -> Path:
    """The program of PREVIOUS_RELEASE (its __main__.py, Pulumi.yaml and floe_infra), from git."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "__main__.py", "Pulumi.yaml", "floe_infra"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if archive.returncode != 0:
        unavailable(
            f"the previous release {PREVIOUS_RELEASE[:12]} is not in this clone's history (a shallow "
            f"clone?): {archive.stderr.decode(errors='replace')[-300:]}"
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.fixture(scope="module")
def gen(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Generated]:
    tmp = tmp_path_factory.mktemp("generated")
    old_code = previous_release(tmp / "previous")
    project = tmp / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((old_code / name).read_text())
    (project / "venv").symlink_to(ROOT / "venv")
    env = pulumi_env(tmp, tools_bin, cluster.kubeconfig)
    # The previous release's program and dynamic providers import its floe_infra, not this one.
    old = Pulumi(tools_bin, project, {**env, "PYTHONPATH": str(old_code)}, stack=STACK)
    stack = Generated(Pulumi(tools_bin, project, env, stack=STACK), cluster, infisical, env)
    log = None
    try:
        stack.pulumi.write_manifest(manifest(infisical, chart_repo, stack.folder))
        ensure_namespaces(cluster, JOBS, OPERATOR_NS)
        old.init(
            [
                ("floe:environment", ENV, False),
                ("floe:kubeContext", "floe-local", False),
                ("floe:protect", "true", False),
                ("floe:createNamespaces", "false", False),
                ("floe:operatorClientId", infisical.viewer[0], False),
                ("floe:operatorClientSecret", infisical.viewer[1], True),
                ("infisical:clientId", infisical.writer[0], False),
                ("infisical:clientSecret", infisical.writer[1], True),
            ]
        )
        old.up()
        stack.values = {k: v for k, v in stack.in_infisical().items() if v}
        log = cluster.start_operator()
        yield stack
    finally:
        stack.pulumi("state", "unprotect", "--all", "--yes", check=False)
        stack.pulumi.destroy(remove=True, check=False)
        stop_operator(cluster, log, "infisical-operator-generated.log")
        cluster.kubectl("delete", "deployment", "app", "-n", JOBS, "--ignore-not-found", "--wait=false")
        cluster.kubectl("delete", "secret", REF, "-n", JOBS, "--ignore-not-found", "--wait=false")
        infisical.remove_prefix(ENV)


def test_1_the_previous_release_made_its_values_with_generated_password(gen: Generated) -> None:
    assert sorted(gen.values) == ["APP_KEY", "APP_PASSWORD"]
    assert gen.results(LEGACY) == gen.values and gen.results(RANDOM) == {}
    assert set(gen.values["APP_KEY"]) <= set(string.ascii_letters + string.digits)
    eventually(lambda: gen.secret() == gen.values, "the Secret synced the generated values", 90)


def test_2_the_new_release_refuses_to_replace_them_before_the_upgrade(gen: Generated) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        (gen.pulumi.project / name).write_text((ROOT / name).read_text())
    # one after the other: the `up` (no preview: only the check stops it) only if the preview was refused
    operations: list[Callable[[], Ran]] = [lambda: gen.pulumi.preview(check=False), lambda: gen.pulumi.up(check=False)]
    for operation in operations:
        refused = operation()
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said[-3000:]
        assert "holds a value that an earlier release wrote (made by GeneratedPassword" in said, said[-3000:]
        assert f"run `floe secrets upgrade --stack {STACK}` first" in said
        assert "Traceback" not in said and not any(v in said for v in gen.values.values())
    assert gen.in_infisical() == gen.values


def test_3_floe_secrets_upgrade_moves_every_value_into_random_password(gen: Generated) -> None:
    # The refused `up` above made RandomPasswords (their values never written): the upgrade replaces them.
    assert set(gen.results(RANDOM)) == set(gen.values) and gen.results(RANDOM) != gen.values
    done = gen.pulumi.floe("secrets", "upgrade", "--stack", STACK)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("moved 2 generated value(s) into RandomPassword, each unchanged: "), done.stdout
    assert not any(v in done.stdout + done.stderr for v in gen.values.values())
    assert gen.results(RANDOM) == gen.values
    stored = gen.stored()
    assert not any(v in stored for v in gen.values.values()), "a value in plaintext in the backend's files"
    again = gen.pulumi.floe("secrets", "upgrade", "--stack", STACK)
    assert (again.returncode, again.stdout) == (
        0,
        f"stack {STACK}: nothing to upgrade (2 value(s) moved before); floe:passwords is random\n",
    )
    assert gen.pulumi.config_get("floe:passwords") == "random"


def test_4_the_first_up_after_it_changes_no_value(gen: Generated) -> None:
    changes = steps(gen.pulumi.preview_json(policy_packs=[POLICY]))
    # Besides: the operator's login material gets its floe-infra/login annotation (an update, no
    # change of data), as in every stack the previous release made (docs: protect and login material).
    # (The full e2e showed the InfisicalAuth's update only: the identity Secret's annotation is not a diff.)
    login = {("kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth", "infisical/infisical-universal"): {"update"}}
    assert changes == {**{(LEGACY, f"{gen.folder}:{k}"): {"delete"} for k in gen.values}, **login}, changes
    gen.pulumi.up()
    assert gen.in_infisical() == gen.values
    assert gen.results(LEGACY) == {} and gen.results(RANDOM) == gen.values
    gen.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])
    eventually(lambda: gen.secret() == gen.values, "the Secret holds the same values")


def test_5_a_rotation_mark_gives_one_key_a_new_value_up_to_the_workload(gen: Generated) -> None:
    outputs = gen.pulumi.outputs()["secrets"][REF]
    gen.cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "app", "namespace": JOBS, "annotations": outputs["workloadAnnotations"]},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "app"}},
                    "template": {
                        "metadata": {"labels": {"app": "app"}},
                        "spec": {
                            "containers": [
                                {"name": "app", "image": "floe/app:1", "envFrom": [{"secretRef": {"name": REF}}]}
                            ]
                        },
                    },
                },
            }
        ),
    )

    # v1beta1 marks a workload's template only when the Secret changes (and so restarts it).
    before, _ = eventually(lambda: rolled_out_in(gen.cluster, JOBS, "app"), "the annotated Deployment rolled out", 90)
    gen.pulumi.config_set(f"floe:rotations.{REF}.APP_KEY", "2026-12", path=True)
    changes = steps(gen.pulumi.preview_json(policy_packs=[POLICY]))
    key = f"{gen.folder}:APP_KEY"
    assert set(changes) == {(RANDOM, key), (VALUE, key)}, changes  # that one password, and its value
    assert changes[(VALUE, key)] == {"update"} and "replace" in changes[(RANDOM, key)], changes
    gen.pulumi.up()
    now = gen.in_infisical()
    assert now["APP_PASSWORD"] == gen.values["APP_PASSWORD"], "a key without a new mark changed"
    assert now["APP_KEY"] != gen.values["APP_KEY"] and now["APP_KEY"] == gen.results(RANDOM)["APP_KEY"]
    rotated = now["APP_KEY"]
    assert rotated is not None and len(rotated) == 32 and set(rotated) <= set(string.ascii_letters + string.digits)
    eventually(lambda: gen.secret() == now, "the Secret follows the rotated value")

    def restarted() -> dict[str, Any] | None:
        d = rolled_out_in(gen.cluster, JOBS, "app")
        return d if d and d["metadata"]["generation"] > before["metadata"]["generation"] else None

    after, _ = eventually(restarted, "the annotated Deployment rolls out with the rotated value", 90)
    assert MARK in after["spec"]["template"]["metadata"]["annotations"]  # the operator's restart
    gen.pulumi.preview(expect_no_changes=True, policy_packs=[POLICY])
    gen.values = {k: v for k, v in now.items() if v}


def test_6_no_generated_value_is_stored_in_plaintext(gen: Generated) -> None:
    stored = gen.stored()
    assert not any(v in stored for v in gen.values.values()), "a value in plaintext in the backend's files"
    assert '"4dabf18193072939515e22adb298388d"' in stored  # Pulumi's secret signature: they are there, encrypted
