"""The program under the real engine: preview, up, refresh and drift, errors, policies, protect,
destroy, against a real API server and Infisical. Steps run in order on one stack, as a platform
team's would; each asserts what the cluster, Infisical and the state hold afterwards."""

from __future__ import annotations

import base64
import gzip
import json
import re
import secrets
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import ROOT, Pulumi, make_project, pulumi_env, unavailable
from harness.cluster import LocalCluster
from harness.localenv import CHART, Infisical

pytestmark = pytest.mark.e2e

ENV = "dev"
MANIFEST = """\
plugins:
  secrets:
    type: infisical
    config:
      site_url: {host}
      project_slug: {project}
      resync_interval: 10s
      operator:
        chart_repo: {chart_repo}
        api: {api}
compute:
  type: snowflake
  connection_secret_ref: snowflake-credentials
catalog:
  type: polaris
  connection_secret_ref: catalog-credentials
secrets:
  snowflake-credentials:
    path: /{prefix}/compute/snowflake
    via: {via}
    keys:
      SNOWFLAKE_ACCOUNT: {{}}
      SNOWFLAKE_USER: {{config: true}}
      SNOWFLAKE_PASSWORD: {{generate: {{length: 32, special: false}}}}
  catalog-credentials:
    path: /{prefix}/catalog/polaris
    namespace: floe-catalog
    keys:
      POLARIS_TOKEN: {{generate: {{length: 24}}}}
  dagster-db:
    path: /{prefix}/dagster
    auto_reload: false
    keys:
      DATABASE_URL: {{config: true}}
"""
SNOWFLAKE = "/{prefix}/compute/snowflake"
CHART_TYPE = "kubernetes:helm.sh/v3:Chart"
# Which object each reference becomes, and where: (kind, namespace, name).
OBJECTS = [
    ("namespace", "", "infisical"),
    ("namespace", "", "floe-jobs"),
    ("namespace", "", "floe-catalog"),
    ("secret", "infisical", "infisical-machine-identity"),
    ("infisicalsecret", "floe-jobs", "snowflake-credentials"),
    ("infisicalsecret", "floe-catalog", "catalog-credentials"),
    ("infisicalsecret", "floe-jobs", "dagster-db"),
    ("deployment", "infisical", None),
]


@dataclass
class Stack:
    pulumi: Pulumi
    cluster: LocalCluster
    infisical: Infisical
    canaries: dict[str, str]

    def path(self, template: str) -> str:
        return template.format(prefix=self.infisical.prefix)

    def kube(self, kind: str, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        """Objects of ``kind`` in the API server (``[]`` when the kind or object does not exist)."""
        args = ["get", kind, *([name] if name else []), "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        try:
            out = self.cluster.kubectl(*args)
        except Exception as exc:
            if "the server doesn't have a resource type" in str(exc):
                return []
            raise
        if not out.strip():
            return []
        data = json.loads(out)
        return list(data["items"]) if "items" in data else [data]


def manifest(infisical: Infisical, chart_repo: str, api: str = "v1alpha1", via: str = "operator") -> str:
    return MANIFEST.format(
        host=infisical.host,
        project=infisical.project_slug,
        chart_repo=chart_repo,
        api=api,
        via=via,
        prefix=infisical.prefix,
    )


def configure(pulumi: Pulumi, infisical: Infisical, canaries: dict[str, str]) -> None:
    pulumi.init(
        [
            *infisical.stack_config(ENV, "floe-local"),
            ("floe:secretValues.snowflake-credentials.SNOWFLAKE_USER", canaries["user"], True),
            ("floe:secretValues.dagster-db.DATABASE_URL", canaries["database"], True),
        ]
    )


@pytest.fixture(scope="module")
def stack(
    tools_bin: Path,
    cluster: LocalCluster,
    infisical: Infisical,
    chart_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    project = make_project(tmp, tools_bin, cluster.kubeconfig, manifest(infisical, chart_repo))
    # The kubeconfig's current context is a cluster that is not there: every step must reach the
    # local cluster through the stack's floe:kubeContext alone.
    kubeconfig = json.loads(cluster.kubeconfig.read_text())
    kubeconfig["clusters"].append({"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:9"}})
    kubeconfig["contexts"].append({"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "floe-admin"}})
    kubeconfig["current-context"] = "elsewhere"
    elsewhere = tmp / "kubeconfig"
    elsewhere.write_text(json.dumps(kubeconfig))
    pulumi = Pulumi(tools_bin, project, pulumi_env(tmp, tools_bin, elsewhere))
    canaries = {
        "user": f"canary-user-{secrets.token_hex(8)}",
        "database": f"postgres://canary-{secrets.token_hex(8)}@db/floe",
        "account": f"canary-account-{secrets.token_hex(8)}",
    }
    configure(pulumi, infisical, canaries)
    # Set by a person in Infisical before the first run (a key with neither generate nor config).
    infisical.set(ENV, SNOWFLAKE.format(prefix=infisical.prefix), "SNOWFLAKE_ACCOUNT", canaries["account"])
    yield Stack(pulumi, cluster, infisical, canaries)
    pulumi.destroy(remove=True, check=False)


def _engine_resources(preview: dict[str, Any]) -> set[tuple[str, str]]:
    """(type, name) of every resource a `pulumi preview --json` would create, but the chart's CRDs
    (the plan, made offline, names the chart they come from, not each CRD)."""
    out = set()
    for step in preview["steps"]:
        urn = step["urn"]
        typ = urn.split("::")[2].split("$")[-1]
        if typ.startswith(("pulumi:", "floe:secrets:")) or f"{CHART_TYPE}$" in urn:
            continue
        out.add((typ, urn.split("::")[3]))
    return out


def _plan_resources(pulumi: Pulumi) -> set[tuple[str, str]]:
    result = pulumi.floe("secrets", "plan", "--stack", ENV, "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    # Pulumi names an object namespace/name, and a Helm release by its name alone.
    return {
        (
            r["type"],
            f"{r['namespace']}/{r['name']}" if r["namespace"] and not r["type"].endswith(":Release") else r["name"],
        )
        for r in plan["resources"]
    }


def test_1_preview_on_an_empty_cluster_shows_the_plan(stack: Stack) -> None:
    assert stack.kube("crd", "", "infisicalsecrets.secrets.infisical.com") == []
    preview = stack.pulumi.preview_json()
    engine = _engine_resources(preview)
    assert engine == _plan_resources(stack.pulumi)
    assert all(step["op"] == "create" for step in preview["steps"])
    assert _chart_crds(preview) == _crds_in_chart()


def _chart_crds(preview: dict[str, Any]) -> set[str]:
    """The names of the resources the preview makes under the operator chart's CRDs component."""
    return {s["urn"].split("::")[-1] for s in preview["steps"] if f"{CHART_TYPE}$" in s["urn"]}


def _crds_in_chart() -> set[str]:
    """The CRD names the chart's templates define (and nothing else of the chart)."""
    names = set()
    for template in (CHART / "templates").glob("*-crd.yaml"):
        names.add(re.search(r"(?m)^  name: (\S+)$", template.read_text())[1])  # type: ignore[index]
    return names


def test_2_up_creates_the_objects_and_writes_infisical(stack: Stack) -> None:
    stack.pulumi.up()
    for kind, namespace, name in OBJECTS:
        assert stack.kube(kind, namespace, name), f"{kind} {namespace}/{name} is not in the API server"
    (snowflake,) = stack.kube("infisicalsecret", "floe-jobs", "snowflake-credentials")
    scope = snowflake["spec"]["authentication"]["universalAuth"]["secretsScope"]
    assert scope == {
        "projectSlug": stack.infisical.project_slug,
        "envSlug": ENV,
        "secretsPath": stack.path(SNOWFLAKE),
    }
    (deployment,) = stack.kube("deployment", "infisical")
    assert deployment["status"].get("readyReplicas") == 1, "the operator Deployment is not Ready"
    get = stack.infisical.get
    assert get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_USER") == stack.canaries["user"]
    assert get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_ACCOUNT") == stack.canaries["account"]
    password = get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_PASSWORD")
    assert password and len(password) == 32 and set(password) <= set(string.ascii_letters + string.digits)
    token = get(ENV, stack.path("/{prefix}/catalog/polaris"), "POLARIS_TOKEN")
    assert token and len(token) == 24
    assert get(ENV, stack.path("/{prefix}/dagster"), "DATABASE_URL") == stack.canaries["database"]
    outputs = stack.pulumi.outputs()["secrets"]
    env_from = {"envFrom": [{"secretRef": {"name": "snowflake-credentials"}}]}
    assert outputs["snowflake-credentials"]["podSpec"] == env_from
    # The CRDs are the stack's, not the release's: kept by Helm and by Pulumi.
    for name in _crds_in_chart():
        (crd,) = stack.kube("crd", "", name)
        annotations = crd["metadata"]["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert "meta.helm.sh/release-name" not in annotations, f"{name} belongs to the Helm release"


def test_3_a_second_preview_and_a_refresh_see_no_changes(stack: Stack) -> None:
    stack.pulumi.preview(expect_no_changes=True)
    stack.pulumi.refresh(expect_no_changes=True)


def test_4_config_change_updates_in_place(stack: Stack) -> None:
    new_user = f"canary-user-{secrets.token_hex(8)}"
    stack.canaries["user-2"] = new_user
    key = "floe:secretValues.snowflake-credentials.SNOWFLAKE_USER"
    stack.pulumi.config_set(key, new_user, secret=True, path=True)
    steps = stack.pulumi.preview_json()["steps"]
    changed = {(s["op"], s["urn"].split("::")[-1]) for s in steps if s["op"] != "same"}
    assert changed == {("update", stack.path(SNOWFLAKE) + ":SNOWFLAKE_USER")}
    stack.pulumi.up()
    assert stack.infisical.get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_USER") == new_user
    stack.pulumi.preview(expect_no_changes=True)


def test_4_a_value_changed_in_infisical_is_drift_on_refresh(stack: Stack) -> None:
    where = (ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_USER")
    stack.infisical.set(*where, "changed-by-hand")
    drift = stack.pulumi.refresh(preview_only=True, expect_no_changes=True, check=False)
    assert drift.returncode != 0
    assert stack.path(SNOWFLAKE) + ":SNOWFLAKE_USER" in drift.stdout
    stack.pulumi.refresh()
    stack.pulumi.up()  # the stack's config wins again
    assert stack.infisical.get(*where) == stack.canaries["user-2"]


def test_4_a_value_deleted_in_infisical_is_recreated_by_refresh_and_up(stack: Stack) -> None:
    where = (ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_PASSWORD")
    before = stack.infisical.get(*where)
    stack.infisical.delete(*where)
    stack.pulumi.refresh()
    stack.pulumi.up()
    after = stack.infisical.get(*where)
    assert after is not None and len(after) == 32
    assert before is not None
    stack.pulumi.preview(expect_no_changes=True)


def _changes(stack: Stack) -> set[tuple[str, str, str]]:
    """(operation, type, name) of every step a preview proposes beyond "same"."""
    steps = stack.pulumi.preview_json()["steps"]
    return {
        (s["op"], s["urn"].split("::")[2].split("$")[-1], s["urn"].split("::")[-1]) for s in steps if s["op"] != "same"
    }


def test_4_renaming_a_reference_or_a_key_keeps_every_value(stack: Stack) -> None:
    manifest_file = stack.pulumi.project / "manifest.yaml"
    original = manifest_file.read_text()
    get = stack.infisical.get
    catalog = stack.path("/{prefix}/catalog/polaris")
    token = get(ENV, catalog, "POLARIS_TOKEN")
    value = "pulumi-python:dynamic/infisical:SecretValue"
    # A reference renamed (same folder): its values keep their URNs; only its sync object moves.
    key = "floe:secretValues.dagster-database.DATABASE_URL"
    stack.pulumi.config_set(key, stack.canaries["database"], secret=True, path=True)
    renamed_ref = original.replace("  dagster-db:\n", "  dagster-database:\n")
    manifest_file.write_text(renamed_ref)
    changes = _changes(stack)
    assert not any("dynamic" in typ for _, typ, _ in changes), changes
    stack.pulumi.up()
    assert get(ENV, stack.path("/{prefix}/dagster"), "DATABASE_URL") == stack.canaries["database"]
    assert stack.kube("infisicalsecret", "floe-jobs", "dagster-database")
    # A key renamed with renamed_from: renamed in place in Infisical, the generated value kept.
    manifest_file.write_text(
        renamed_ref.replace("POLARIS_TOKEN: {", "POLARIS_API_TOKEN: {renamed_from: POLARIS_TOKEN, ")
    )
    assert _changes(stack) == {("update", value, f"{catalog}:POLARIS_API_TOKEN")}
    stack.pulumi.up()
    assert get(ENV, catalog, "POLARIS_API_TOKEN") == token
    assert get(ENV, catalog, "POLARIS_TOKEN") is None
    # The state points at the renamed key: a refresh finds it as it is.
    stack.pulumi.refresh(expect_no_changes=True)
    # And back, the same ways, so the later steps start from the original manifest.
    manifest_file.write_text(
        renamed_ref.replace("POLARIS_TOKEN: {", "POLARIS_TOKEN: {renamed_from: POLARIS_API_TOKEN, ")
    )
    stack.pulumi.up()
    manifest_file.write_text(original)
    stack.pulumi.up()
    stack.pulumi.preview(expect_no_changes=True)
    assert get(ENV, catalog, "POLARIS_TOKEN") == token


def test_4_a_new_url_for_the_same_infisical_keeps_every_key(stack: Stack) -> None:
    """The writer's host given in another form (a new DNS name for the same server): an update
    that finds each key where it is; nothing is deleted, and the next preview is empty."""
    where = (ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_PASSWORD")
    password = stack.infisical.get(*where)
    other = stack.infisical.host.replace("127.0.0.1", "localhost")
    assert other != stack.infisical.host
    stack.pulumi.config_set("infisical:siteUrl", other)
    try:
        changes = _changes(stack)
        assert changes and {op for op, _, _ in changes} == {"update"}, changes
        stack.pulumi.up()
        assert stack.infisical.get(*where) == password
        assert stack.infisical.get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_USER") == stack.canaries["user-2"]
        stack.pulumi.preview(expect_no_changes=True)
    finally:
        stack.pulumi.config_rm("infisical:siteUrl")
    stack.pulumi.up()
    assert stack.infisical.get(*where) == password


def _uids(stack: Stack, kind: str) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in stack.kube(kind, "")}


def test_4_moving_the_operator_to_another_namespace_keeps_every_infisical_secret(stack: Stack) -> None:
    """The release is replaced (deleted, then installed in the new namespace). Were the CRDs
    inside it, every InfisicalSecret would go with them."""
    manifest_file = stack.pulumi.project / "manifest.yaml"
    original = manifest_file.read_text()
    crds = _uids(stack, "crd")
    infisical_secrets = _all_uids(stack, "infisicalsecret")
    assert len(infisical_secrets) == 3
    moved = original.replace("      operator:\n", "      operator:\n        namespace: infisical-ops\n")
    manifest_file.write_text(moved)
    try:
        stack.pulumi.up()
        (deployment,) = stack.kube("deployment", "infisical-ops")
        assert deployment["status"].get("readyReplicas") == 1
        assert stack.kube("deployment", "infisical") == []
        assert _all_uids(stack, "infisicalsecret") == infisical_secrets
        assert _uids(stack, "crd") == crds
        (snowflake,) = stack.kube("infisicalsecret", "floe-jobs", "snowflake-credentials")
        ref = snowflake["spec"]["authentication"]["universalAuth"]["credentialsRef"]
        assert ref == {"secretName": "infisical-machine-identity", "secretNamespace": "infisical-ops"}
    finally:
        manifest_file.write_text(original)
    stack.pulumi.up()
    assert _all_uids(stack, "infisicalsecret") == infisical_secrets
    stack.pulumi.preview(expect_no_changes=True)


def _all_uids(stack: Stack, kind: str) -> dict[str, str]:
    out = stack.cluster.kubectl("get", kind, "-A", "-o", "json")
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["metadata"]["uid"] for o in json.loads(out)["items"]
    }


def _as_component_per_reference(deployment: dict[str, Any]) -> dict[str, Any]:
    """The state as the program made it until 2026-11: every reference's objects (all but the
    namespaces) under a floe:secrets:SecretReference component. A URN holds its parents' types,
    not their names, so one component stands for all of them."""
    resources = deployment["resources"]
    platform = next(r["urn"] for r in resources if r["type"] == "floe:secrets:Platform")
    prefix = platform.rsplit("::", 1)[0]
    component = f"{prefix}$floe:secrets:SecretReference::former"
    moved = {
        r["urn"]: r["urn"].replace(f"{prefix}$", f"{prefix}$floe:secrets:SecretReference$", 1)
        for r in resources
        if r.get("parent") == platform
        and not r["type"].startswith(("floe:", "pulumi:providers:"))
        and r["type"] != "kubernetes:core/v1:Namespace"
    }
    text = json.dumps(deployment)
    for old, new in moved.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    rewritten = json.loads(text)
    for r in rewritten["resources"]:
        if r["urn"] in moved.values():
            r["parent"] = component
    at = next(i for i, r in enumerate(rewritten["resources"]) if r["urn"] == platform) + 1
    rewritten["resources"].insert(
        at, {"urn": component, "custom": False, "type": "floe:secrets:SecretReference", "parent": platform}
    )
    return dict(rewritten)


def test_4_a_stack_made_with_a_component_per_reference_upgrades_in_place(stack: Stack) -> None:
    exported = json.loads(stack.pulumi("stack", "export").stdout)  # its secrets encrypted, as stored
    exported["deployment"] = _as_component_per_reference(exported["deployment"])
    stack.pulumi.import_(exported)
    assert "floe:secrets:SecretReference$" in stack.pulumi.state()
    before = {r["urn"] for r in exported["deployment"]["resources"]}
    # Every object is the same one under its new URN; only the component goes.
    assert _changes(stack) == {("delete", "floe:secrets:SecretReference", "former")}
    token = stack.infisical.get(ENV, stack.path("/{prefix}/catalog/polaris"), "POLARIS_TOKEN")
    stack.pulumi.up()
    stack.pulumi.preview(expect_no_changes=True)
    after = stack.pulumi.resources()
    assert len(after) == len(before) - 1
    assert stack.infisical.get(ENV, stack.path("/{prefix}/catalog/polaris"), "POLARIS_TOKEN") == token


def test_5_a_broken_manifest_stops_preview_with_one_line(stack: Stack) -> None:
    manifest_file = stack.pulumi.project / "manifest.yaml"
    good = manifest_file.read_text()
    manifest_file.write_text(good.replace("auto_reload: false", 'auto_reload: "no"'))
    try:
        result = stack.pulumi.preview(check=False)
    finally:
        manifest_file.write_text(good)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert re.search(r"manifest\.yaml: 1 problem:\s+- line \d+: secrets\.dagster-db\.auto_reload", output), output
    assert "unhandled error" not in output and "non-zero exit code" not in output


def test_5_missing_secret_config_stops_preview_and_creates_nothing(stack: Stack) -> None:
    fresh = Pulumi(stack.pulumi.bin_dir, stack.pulumi.project, stack.pulumi.env, stack="missing")
    fresh.init()
    try:
        fresh.config_set("floe:environment", ENV)
        result = fresh.up(check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "Traceback" not in output
        assert "pulumi config set --secret --stack missing 'floe:operatorClientId'" in output
        resources = fresh.resources()
        assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == []
        # A pull request's preview gets no secrets: with FLOE_PREVIEW_WITHOUT_SECRETS it goes on,
        # the missing values unknown and each missing setting a warning; an `up` still stops.
        fresh.config_set("floe:kubeContext", "floe-local")
        no_secrets = Pulumi(
            fresh.bin_dir, fresh.project, {**fresh.env, "FLOE_PREVIEW_WITHOUT_SECRETS": "true"}, stack="missing"
        )
        preview = no_secrets.preview()
        assert "preview without secrets (FLOE_PREVIEW_WITHOUT_SECRETS)" in preview.stdout
        assert "floe:operatorClientId" in preview.stdout
        assert no_secrets.up(check=False).returncode != 0
    finally:
        fresh.remove(check=False)


def test_6_the_policy_pack_runs_and_a_violation_fails_preview(stack: Stack) -> None:
    policy = str(ROOT / "policy")
    stack.pulumi.preview(policy_packs=[policy])
    stack.pulumi.config_set("floe:environment", "staging")
    try:
        result = stack.pulumi.preview(policy_packs=[policy], check=False)
    finally:
        stack.pulumi.config_set("floe:environment", ENV)
    assert result.returncode != 0
    assert "infisical-environment-matches-stack" in result.stdout


def test_7_the_state_holds_no_secret_in_plaintext(stack: Stack) -> None:
    state = stack.pulumi.state()
    values = [stack.canaries[k] for k in ("user", "user-2", "database", "account")]
    values += [stack.infisical.viewer[1], stack.infisical.writer[1]]
    values += [
        v
        for v in (
            stack.infisical.get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_PASSWORD"),
            stack.infisical.get(ENV, stack.path("/{prefix}/catalog/polaris"), "POLARIS_TOKEN"),
        )
        if v
    ]
    leaked = [v for v in values if v in state]
    assert leaked == [], "plaintext secret values in the state file"
    assert '"4dabf18193072939515e22adb298388d"' in state  # Pulumi's secret signature: they are there, encrypted


def test_8_a_protected_stack_refuses_destroy(stack: Stack) -> None:
    stack.pulumi.config_set("floe:protect", "true")
    stack.pulumi.up()
    result = stack.pulumi.destroy(check=False)
    assert result.returncode != 0
    assert "protected" in (result.stdout + result.stderr)
    assert stack.kube("infisicalsecret", "floe-jobs", "snowflake-credentials")
    stack.pulumi.config_set("floe:protect", "false")
    stack.pulumi.up()


def test_8_destroy_on_dev_leaves_what_the_readme_says(stack: Stack) -> None:
    stack.pulumi.destroy()
    for kind, namespace, name in OBJECTS:
        if kind == "namespace":  # kept: deleting one would delete every workload in it
            assert stack.kube(kind, namespace, name), f"namespace {name} was deleted"
        else:
            assert not stack.kube(kind, namespace, name), f"{kind} {namespace}/{name} survived destroy"
    # The CRDs stay too: deleting one would delete every object of its kind, any stack's.
    assert set(_crds_in_chart()) <= set(_uids(stack, "crd"))
    get = stack.infisical.get
    # Keys the stack wrote are deleted; keys people set by hand are theirs and stay.
    assert get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_USER") is None
    assert get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_PASSWORD") is None
    assert get(ENV, stack.path(SNOWFLAKE), "SNOWFLAKE_ACCOUNT") == stack.canaries["account"]


def test_9_v1beta1_objects_are_accepted_by_the_api_server(
    stack: Stack, chart_repo: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack.pulumi.write_manifest(manifest(stack.infisical, chart_repo, api="v1beta1"))
    stack.pulumi.up()
    assert stack.kube("infisicalconnection", "infisical")
    assert stack.kube("infisicalauth", "infisical")
    static = stack.kube("infisicalstaticsecret", "floe-jobs", "snowflake-credentials")
    assert static, "the InfisicalStaticSecret is not in the API server"
    assert not stack.kube("infisicalsecret", "floe-jobs", "snowflake-credentials")
    stack.pulumi.destroy()
    # Back to the module's manifest (v1alpha1): step 11 runs it as the former version did.
    stack.pulumi.write_manifest(manifest(stack.infisical, chart_repo))


# The last version whose operator release held the CRDs (installCRDs: true).
FORMER_VERSION = "490b5c028f9301fce1f08033d5e46276f52bb0eb"


FORMER_MAIN = """\
# The program as FORMER_VERSION ran it: its floe_infra package, whatever the virtualenv's
# editable install of this checkout would import.
import importlib.util
import sys

spec = importlib.util.spec_from_file_location(
    "floe_infra", "{code}/floe_infra/__init__.py", submodule_search_locations=["{code}/floe_infra"]
)
module = importlib.util.module_from_spec(spec)
sys.modules["floe_infra"] = module
spec.loader.exec_module(module)

from floe_infra.program import run

run()
"""


def _former_project(stack: Stack, tmp: Path) -> Path:
    """A copy of the stack's project that runs ``floe_infra`` as it was at FORMER_VERSION (or skip).
    Same project name, backend and stack config: it is the same stack."""
    code = tmp / "former-code"
    code.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", FORMER_VERSION, "floe_infra"], capture_output=True)
    if archive.returncode != 0:
        unavailable(f"commit {FORMER_VERSION} is not in this checkout: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    project = tmp / "former-project"
    project.mkdir()
    for name in ("Pulumi.yaml", f"Pulumi.{ENV}.yaml", "manifest.yaml"):
        (project / name).write_text((stack.pulumi.project / name).read_text())
    (project / "__main__.py").write_text(FORMER_MAIN.format(code=code))
    (project / "venv").symlink_to(ROOT / "venv")
    return project


def _release_manifest(stack: Stack, namespace: str, name: str) -> str:
    """The objects Helm's latest revision of a release holds (its release Secret, decoded)."""
    (secret,) = [
        s
        for s in stack.kube("secret", namespace)
        if s["metadata"]["name"].startswith(f"sh.helm.release.v1.{name}.")
        and s["metadata"].get("labels", {}).get("status") == "deployed"
    ]
    release = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret["data"]["release"]))))
    return str(release["manifest"])


def test_11_a_stack_whose_release_held_the_crds_upgrades_without_losing_an_infisical_secret(
    stack: Stack, tmp_path: Path
) -> None:
    """Stacks made before the CRDs were resources of their own: dropping them from the release
    must not delete them (Helm honours the keep annotation the stack puts on them first)."""
    former_project = _former_project(stack, tmp_path)
    names = sorted(_crds_in_chart())
    stack.cluster.kubectl("delete", "crd", *names, "--ignore-not-found")  # a cluster as the old version left it
    # The same (destroyed) stack: the namespaces it left carry its name in a label that another
    # stack's server-side apply could not take over.
    # PYTHONPATH: its dynamic providers too load FORMER_VERSION's classes (pickled by module path).
    former_env = {**stack.pulumi.env, "PYTHONPATH": str(tmp_path / "former-code")}
    former = Pulumi(stack.pulumi.bin_dir, former_project, former_env)
    try:
        former.up()
        assert "CustomResourceDefinition" in _release_manifest(stack, "infisical", "infisical-secrets-operator")
        crds, infisical_secrets = _uids(stack, "crd"), _all_uids(stack, "infisicalsecret")
        assert set(names) <= set(crds) and len(infisical_secrets) == 3
        upgraded = stack.pulumi
        # Its generate: values were GeneratedPasswords: moved as the README says, before the `up`.
        moved = upgraded.floe("secrets", "upgrade", "--stack", ENV)
        assert moved.returncode == 0 and moved.stdout.startswith("moved "), moved.stdout + moved.stderr
        upgraded.up()
        assert "CustomResourceDefinition" not in _release_manifest(stack, "infisical", "infisical-secrets-operator")
        assert _uids(stack, "crd") == crds
        assert _all_uids(stack, "infisicalsecret") == infisical_secrets
        upgraded.preview(expect_no_changes=True)
        upgraded.destroy()
        assert set(names) <= set(_uids(stack, "crd")), "destroy deleted the CRDs"
    finally:
        stack.pulumi.destroy(check=False)
