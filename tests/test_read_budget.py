"""The read budget: the plan knows how many folder reads the operator makes at each refresh, and
says so, with the arithmetic and the fixes, when they exceed what the server allows a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RunProgram, default_config

from floe_infra import StackSettings, build_plan, load_manifest
from floe_infra.plan.planner import reads_per_refresh


def manifest(references: int, interval: str = "60s", api: str = "v1beta1", **config: Any) -> str:
    return yaml.safe_dump({
        "plugins": {"secrets": {"type": "infisical", "config": {
            "site_url": "https://infisical.company.com", "project_slug": "floe-platform",
            "resync_interval": interval, "operator": {"api": api}, **config,
        }}},
        "secrets": {f"ref-{i}": {"path": f"/team/ref-{i}"} for i in range(references)},
    })


def plan_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return build_plan(load_manifest(path), StackSettings(stack="dev", environment="dev"))


@pytest.mark.parametrize(
    ("references", "interval", "config", "over"),
    [
        (40, "60s", {}, False),  # 40 a minute: the self-hosted default exactly
        (41, "60s", {}, True),
        (100, "150s", {}, False),
        (100, "60s", {"read_budget": 200}, False),  # a server whose limit was raised
        (1000, "60s", {}, True),
    ],
    ids=["at-the-limit", "one-over", "longer-interval", "raised-limit", "thousand"],
)
def test_the_plan_warns_when_the_operator_would_read_more_than_the_server_allows(
    tmp_path: Path, references: int, interval: str, config: dict[str, Any], over: bool
) -> None:
    plan = plan_of(tmp_path, manifest(references, interval, **config))
    assert reads_per_refresh(plan.references) == references
    assert (plan.over_read_budget is not None) is over
    assert (plan.over_read_budget in plan.warnings) is over


@pytest.mark.parametrize("api", ["v1beta1", "v1alpha1"])
def test_the_warning_gives_the_arithmetic_and_the_fixes(tmp_path: Path, api: str) -> None:
    plan = plan_of(tmp_path, manifest(100, api=api))
    assert plan.over_read_budget == (
        "the operator would read Infisical 100 times a minute (100 folder reads every 60s: "
        "plugins.secrets.config.resync_interval 60s), more than plugins.secrets.config.read_budget (40 a minute, "
        "the server's rate limit for one client address); past it Infisical refuses reads and Secrets stop following "
        "their values. Fix: set resync_interval to at least 150s, read fewer folders, or raise the server's limit "
        "and read_budget"
    )


def test_a_bad_read_budget_names_the_field(tmp_path: Path) -> None:
    from floe_infra import ManifestError

    with pytest.raises(ManifestError, match=r"plugins\.secrets\.config\.read_budget: Input should be greater than or "
                                            r"equal to 1"):
        plan_of(tmp_path, manifest(1, read_budget=0))


@pytest.mark.parametrize(("protect", "preview", "refused"), [(True, False, True), (True, True, True),
                                                              (False, False, False), (False, True, False)],
                         ids=["protected-up", "protected-preview", "unprotected-up", "unprotected-preview"])
def test_a_protected_stack_over_the_budget_is_refused_and_another_warned(
    run_program: RunProgram, protect: bool, preview: bool, refused: bool,
) -> None:
    from floe_infra.deploy.program import BadInput

    config = {**default_config("dev"), **({"floe:protect": "true", "floe:kubeContext": "floe-prod"} if protect else {})}
    run = run_program(manifest(50), config=config, expect_error=refused, preview=preview)
    if refused:
        assert isinstance(run.error, BadInput) and run.registrations == []
        assert run.error.message.startswith("stack dev is protected (floe:protect: true), and the operator would read "
                                            "Infisical 50 times a minute")
    else:
        assert run.registrations


# --- references of one folder share one InfisicalStaticSecret ----------------------------------

def shared(api: str = "v1beta1", create_namespaces: bool = True) -> tuple[str, StackSettings]:
    text = yaml.safe_dump({
        "plugins": {"secrets": {"type": "infisical", "config": {
            "site_url": "https://infisical.company.com", "project_slug": "floe-platform", "operator": {"api": api},
        }}},
        "secrets": {
            "warehouse": {"path": "/data/warehouse", "keys": {"TOKEN": {"generate": {}}}},
            "loader": {"path": "/data/warehouse", "namespace": "ingest"},
            "reporting": {"path": "/data/warehouse", "keys": {"USER": {"config": True}}},
            "lake": {"path": "/data/lake"},
            "eso-side": {"path": "/data/warehouse", "via": "eso"},
        },
    })
    return text, StackSettings(stack="dev", environment="dev", create_namespaces=create_namespaces)


def test_references_of_one_folder_share_one_object_with_a_target_each(tmp_path: Path) -> None:
    text, settings = shared()
    (tmp_path / "manifest.yaml").write_text(text)
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    static = {o.name: o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret"}
    # The folder's object is its first reference's (by name), in that reference's namespace.
    assert sorted(static) == ["lake", "loader"]
    loader = static["loader"]
    assert loader.namespace == "ingest"
    assert loader.content["spec"]["sources"] == [
        {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": "/data/warehouse"}]
    assert [(t["namespace"], t["name"]) for t in loader.content["spec"]["targets"]] == [
        ("ingest", "loader"), ("floe-jobs", "reporting"), ("floe-jobs", "warehouse")]
    # It waits for every value of the folder and for the namespace of every Secret it fills.
    assert {"SecretValue:/data/warehouse:TOKEN", "SecretValue:/data/warehouse:USER",
            "Namespace:ingest", "Namespace:floe-jobs"} <= set(loader.depends_on)
    # Reads grow with folders (and ESO's one per reference), not with references.
    assert reads_per_refresh(plan.references) == 3
    by_ref = {p.reference.name: p for p in plan.references}
    assert [o.kind for o in by_ref["warehouse"].objects] == ["SecretValue"]  # its Secret: loader's object
    assert by_ref["warehouse"].output["workloadAnnotations"] == {"secrets.infisical.com/auto-reload": "true"}


def test_v1alpha1_reads_once_per_reference(tmp_path: Path) -> None:
    text, settings = shared("v1alpha1")
    (tmp_path / "manifest.yaml").write_text(text)
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    assert sorted(o.name for o in plan.kube_objects() if o.kind == "InfisicalSecret") == [
        "lake", "loader", "reporting", "warehouse"]
    assert reads_per_refresh(plan.references) == 5


def test_status_reports_each_secret_of_a_shared_object() -> None:
    from floe_infra.day2.plugin_infisical import static_sync_states

    obj = {"metadata": {"name": "loader", "namespace": "ingest"},
           "spec": {"infisicalAuthRef": {"name": "infisical-universal", "namespace": "infisical"},
                    "sources": [{"projectSlug": "p", "environmentSlug": "dev", "secretPath": "/data/warehouse"}],
                    "targets": [{"name": "loader", "namespace": "ingest"},
                                {"name": "warehouse", "namespace": "floe-jobs"}]},
           "status": {"conditions": [
               {"type": "secrets.infisical.com/LastReconcileStatus", "status": "True", "message": "ok"},
               {"type": "secrets.infisical.com/LastSuccessfulReconcileAt", "status": "True",
                "message": "2026-12-06T08:00:00Z"}]}}
    states = static_sync_states(obj)
    assert [(s.namespace, s.name, s.kind, s.status, s.environment) for s in states] == [
        ("ingest", "loader", "InfisicalStaticSecret", "Synced", "dev"),
        ("floe-jobs", "warehouse", "InfisicalStaticSecret", "Synced", "dev")]
    assert states[0].last_sync == states[1].last_sync is not None


def test_sources_prefix_reads_every_folder_in_one_recursive_read(tmp_path: Path) -> None:
    doc = yaml.safe_load(shared()[0])
    doc["plugins"]["secrets"]["config"]["operator"]["sources"] = "prefix"
    doc["secrets"]["loader"]["keys"] = {"TOKEN": {}}
    doc["secrets"]["lake"]["keys"] = {"LAKE_KEY": {}}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), shared()[1])
    (static,) = [o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret"]
    assert (static.namespace, static.name) == ("floe-jobs", "lake")  # the first reference's, by name
    assert static.content["spec"]["sources"] == [
        {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": "/data", "recursive": True}]
    targets = {t["name"]: t for t in static.content["spec"]["targets"]}
    assert sorted(targets) == ["lake", "loader", "reporting", "warehouse"]  # ESO's is not the operator's
    assert targets["lake"]["template"] == {"engineVersion": "v1", "data": {
        "LAKE_KEY": '{{ (secretFrom "/data/lake" "LAKE_KEY").Value }}'}}
    assert targets["warehouse"]["template"]["data"] == {"TOKEN": '{{ (secretFrom "/data/warehouse" "TOKEN").Value }}'}
    assert reads_per_refresh(plan.references) == 2  # the operator's one, and ESO's


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["plugins"]["secrets"]["config"]["operator"].update(api="v1alpha1"),
     "sources: prefix reads with recursive sources and templates, which only api: v1beta1 has"),
    (lambda d: None, "reference 'lake' declares no keys, and with operator.sources: prefix a Secret holds exactly "
                     "its declared keys: declare them under secrets.lake.keys"),
], ids=["v1alpha1", "keys-not-declared"])
def test_sources_prefix_needs_v1beta1_and_declared_keys(tmp_path: Path, change: Any, message: str) -> None:
    from floe_infra.errors import ManifestError

    doc = yaml.safe_load(shared()[0])
    doc["plugins"]["secrets"]["config"]["operator"]["sources"] = "prefix"
    doc["secrets"]["loader"]["keys"] = {"TOKEN": {}}
    change(doc)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ManifestError) as caught:
        build_plan(load_manifest(tmp_path / "manifest.yaml"), shared()[1])
    assert message in str(caught.value)


@pytest.mark.parametrize(("paths", "prefix"), [
    (["/a/b", "/a/c"], "/a"), (["/a/b"], "/a/b"), (["/a", "/b"], "/"), (["/a/b/c", "/a/b"], "/a/b"),
    (["/ab", "/a"], "/"),
])
def test_common_prefix_is_a_folder_not_a_string_prefix(paths: list[str], prefix: str) -> None:
    from floe_infra.plan.sync_objects import common_prefix

    assert common_prefix(paths) == prefix
