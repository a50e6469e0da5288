"""The read budget: the plan knows how many folder reads the operator makes at each refresh, and
says so, with the arithmetic and the fixes, when they exceed what the server allows a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from support import RunProgram, default_config

from floe_infra import StackSettings, build_plan, load_manifest
from floe_infra.plan.planner import reads_per_refresh


def manifest(references: int, interval: str = "60s", api: str = "v1beta1", **config: Any) -> str:
    return yaml.safe_dump(
        {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": "https://infisical.company.com",
                        "project_slug": "floe-platform",
                        "resync_interval": interval,
                        "operator": {"api": api},
                        **config,
                    },
                }
            },
            "secrets": {f"ref-{i}": {"path": f"/team/ref-{i}"} for i in range(references)},
        }
    )


def plan_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return build_plan(load_manifest(path), StackSettings(stack="dev", environment="dev"))


@pytest.mark.parametrize(
    ("references", "interval", "config", "over"),
    [
        (40, "60s", {}, False),  # 40 a minute: the self-hosted default exactly
        (41, "60s", {}, True),
        (30, "90s", {}, False),
        (30, "30s", {}, True),  # 60 a minute
        (100, "150s", {}, True),  # 40 a minute on average, but 100 at each start
        (100, "60s", {"read_budget": 200}, False),  # a server whose limit was raised
        (1000, "60s", {}, True),
    ],
    ids=["at-the-limit", "one-over", "longer-interval", "too-often", "burst-at-start", "raised-limit", "thousand"],
)
def test_the_plan_warns_when_the_operator_would_read_more_than_the_server_allows(
    tmp_path: Path, references: int, interval: str, config: dict[str, Any], over: bool
) -> None:
    plan = plan_of(tmp_path, manifest(references, interval, **config))
    assert reads_per_refresh(plan.references) == references
    assert (plan.over_read_budget is not None) is over
    assert (plan.over_read_budget in plan.warnings) is over


FEWER = {
    ("v1beta1", "reference"): "operator.sources: folder (one read per folder) or prefix (one read for all)",
    ("v1beta1", "folder"): "fewer folders",
    ("v1alpha1", "reference"): "operator.api v1beta1 (v1alpha1 reads once per reference)",
}


@pytest.mark.parametrize(("api", "sources"), list(FEWER), ids=["-".join(k) for k in FEWER])
def test_the_warning_gives_the_arithmetic_and_the_fixes(tmp_path: Path, api: str, sources: str) -> None:
    plan = plan_of(tmp_path, manifest(30, "30s", api=api))
    if sources != "reference":
        text = manifest(30, "30s", api=api)
        doc = yaml.safe_load(text)
        doc["plugins"]["secrets"]["config"]["operator"]["sources"] = sources
        plan = plan_of(tmp_path, yaml.safe_dump(doc))
    assert plan.over_read_budget == (
        "the operator would read Infisical 60 times a minute (30 reads every 30s: "
        "plugins.secrets.config.resync_interval 30s), more than plugins.secrets.config.read_budget (40 a minute, "
        "the server's rate limit for one client address); past it Infisical refuses reads and Secrets stop following "
        f"their values. Fix: set resync_interval to at least 45s, {FEWER[(api, sources)]}, or raise the server's "
        "limit and read_budget"
    )


def test_more_objects_than_the_budget_is_a_burst_at_every_start(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, manifest(100, "1h"))
    assert plan.over_read_budget == (
        "the operator would make 100 reads of Infisical at each refresh, and reads them all at once when it starts, "
        "more than plugins.secrets.config.read_budget (40 a minute, the server's rate limit for one client address); "
        "past it Infisical refuses reads and Secrets stop following their values. Fix: operator.sources: folder (one "
        "read per folder) or prefix (one read for all), or raise the server's limit and read_budget"
    )


def test_a_bad_read_budget_names_the_field(tmp_path: Path) -> None:
    from floe_infra import ManifestError

    with pytest.raises(
        ManifestError,
        match=r"plugins\.secrets\.config\.read_budget: Input should be greater than or "
        r"equal to 1",
    ):
        plan_of(tmp_path, manifest(1, read_budget=0))


@pytest.mark.parametrize(
    ("protect", "preview", "refused"),
    [(True, False, True), (True, True, True), (False, False, False), (False, True, False)],
    ids=["protected-up", "protected-preview", "unprotected-up", "unprotected-preview"],
)
def test_a_protected_stack_over_the_budget_is_refused_and_another_warned(
    run_program: RunProgram,
    protect: bool,
    preview: bool,
    refused: bool,
) -> None:
    from floe_infra.deploy.program import BadInput

    config = {**default_config("dev"), **({"floe:protect": "true", "floe:kubeContext": "floe-prod"} if protect else {})}
    run = run_program(manifest(30, "30s"), config=config, expect_error=refused, preview=preview)
    if refused:
        assert isinstance(run.error, BadInput) and run.registrations == []
        assert run.error.message.startswith(
            "stack dev is protected (floe:protect: true), and the operator would read Infisical 60 times a minute"
        )
    else:
        assert run.registrations


# --- references of one folder share one InfisicalStaticSecret ----------------------------------


def shared(api: str = "v1beta1", create_namespaces: bool = True, sources: str = "folder") -> tuple[str, StackSettings]:
    operator = {"api": api, **({"sources": sources} if api == "v1beta1" else {})}
    text = yaml.safe_dump(
        {
            "plugins": {
                "secrets": {
                    "type": "infisical",
                    "config": {
                        "site_url": "https://infisical.company.com",
                        "project_slug": "floe-platform",
                        "operator": operator,
                    },
                }
            },
            "secrets": {
                "warehouse": {"path": "/data/warehouse", "keys": {"TOKEN": {"generate": {}}}},
                "loader": {"path": "/data/warehouse", "namespace": "ingest"},
                "reporting": {"path": "/data/warehouse", "keys": {"USER": {"config": True}}},
                "lake": {"path": "/data/lake"},
                "eso-side": {"path": "/data/warehouse", "via": "eso"},
            },
        }
    )
    return text, StackSettings(stack="dev", environment="dev", create_namespaces=create_namespaces)


def test_references_of_one_folder_share_one_object_with_a_target_each(tmp_path: Path) -> None:
    text, settings = shared()
    (tmp_path / "manifest.yaml").write_text(text)
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    static = {(o.namespace, o.name): o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret"}
    # Each folder's object is named after it (and its hash), in the operator's namespace: a
    # reference joining or leaving the folder changes its targets, never its name.
    assert sorted(static) == [
        ("infisical", "floe-dev-data-lake-096d88"),
        ("infisical", "floe-dev-data-warehouse-5fcdea"),
    ]
    folder = static[("infisical", "floe-dev-data-warehouse-5fcdea")]
    assert folder.content["spec"]["sources"] == [
        {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": "/data/warehouse"}
    ]
    assert [(t["namespace"], t["name"]) for t in folder.content["spec"]["targets"]] == [
        ("ingest", "loader"),
        ("floe-jobs", "reporting"),
        ("floe-jobs", "warehouse"),
    ]
    # It waits for every value of the folder and for the namespace of every Secret it fills.
    assert {
        "SecretValue:/data/warehouse:TOKEN",
        "SecretValue:/data/warehouse:USER",
        "Namespace:ingest",
        "Namespace:floe-jobs",
    } <= set(folder.depends_on)
    # Reads grow with folders (and ESO's one per reference), not with references.
    assert reads_per_refresh(plan.references) == 3
    by_ref = {p.reference.name: p for p in plan.references}
    assert [o.kind for o in by_ref["warehouse"].objects] == ["SecretValue"]  # the plan of loader holds it
    assert by_ref["warehouse"].output["workloadAnnotations"] == {"secrets.infisical.com/auto-reload": "true"}
    # The default, one object per reference: as before, each in its reference's namespace.
    text, _ = shared(sources="reference")
    (tmp_path / "manifest.yaml").write_text(text)
    default = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    assert sorted((o.namespace, o.name) for o in default.kube_objects() if o.kind == "InfisicalStaticSecret") == [
        ("floe-jobs", "lake"),
        ("floe-jobs", "reporting"),
        ("floe-jobs", "warehouse"),
        ("ingest", "loader"),
    ]
    assert reads_per_refresh(default.references) == 5


def test_joining_or_leaving_a_folder_keeps_its_object(tmp_path: Path) -> None:
    text, settings = shared()
    doc = yaml.safe_load(text)
    doc["secrets"]["aaa-first"] = {"path": "/data/warehouse"}  # sorts before every other reference
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    names = sorted(o.logical_name for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret")
    assert names == ["infisical/floe-dev-data-lake-096d88", "infisical/floe-dev-data-warehouse-5fcdea"]


def test_v1alpha1_reads_once_per_reference(tmp_path: Path) -> None:
    text, settings = shared("v1alpha1")
    (tmp_path / "manifest.yaml").write_text(text)
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), settings)
    assert sorted(o.name for o in plan.kube_objects() if o.kind == "InfisicalSecret") == [
        "lake",
        "loader",
        "reporting",
        "warehouse",
    ]
    assert reads_per_refresh(plan.references) == 5


def test_status_reports_each_secret_of_a_shared_object() -> None:
    from floe_infra.day2.plugin_infisical import static_sync_states

    obj = {
        "metadata": {"name": "loader", "namespace": "ingest"},
        "spec": {
            "infisicalAuthRef": {"name": "infisical-universal", "namespace": "infisical"},
            "sources": [{"projectSlug": "p", "environmentSlug": "dev", "secretPath": "/data/warehouse"}],
            "targets": [{"name": "loader", "namespace": "ingest"}, {"name": "warehouse", "namespace": "floe-jobs"}],
        },
        "status": {
            "conditions": [
                {"type": "secrets.infisical.com/LastReconcileStatus", "status": "True", "message": "ok"},
                {
                    "type": "secrets.infisical.com/LastSuccessfulReconcileAt",
                    "status": "True",
                    "message": "2026-12-06T08:00:00Z",
                },
            ]
        },
    }
    states = static_sync_states(obj)
    assert [(s.namespace, s.name, s.kind, s.status, s.environment) for s in states] == [
        ("ingest", "loader", "InfisicalStaticSecret", "Synced", "dev"),
        ("floe-jobs", "warehouse", "InfisicalStaticSecret", "Synced", "dev"),
    ]
    assert states[0].last_sync == states[1].last_sync is not None


def test_sources_prefix_reads_every_folder_in_one_recursive_read(tmp_path: Path) -> None:
    doc = yaml.safe_load(shared(sources="prefix")[0])
    doc["secrets"]["loader"]["keys"] = {"TOKEN": {}}
    doc["secrets"]["lake"]["keys"] = {"LAKE_KEY": {}}
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(doc))
    plan = build_plan(load_manifest(tmp_path / "manifest.yaml"), shared()[1])
    (static,) = [o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret"]
    assert (static.namespace, static.name) == ("infisical", "floe-dev-all-folders")
    assert static.content["spec"]["sources"] == [
        {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": "/data", "recursive": True}
    ]
    targets = {t["name"]: t for t in static.content["spec"]["targets"]}
    assert sorted(targets) == ["lake", "loader", "reporting", "warehouse"]  # ESO's is not the operator's
    assert targets["lake"]["template"] == {
        "engineVersion": "v1",
        "data": {"LAKE_KEY": '{{ (secretFrom "/data/lake" "LAKE_KEY").Value }}'},
    }
    assert targets["warehouse"]["template"]["data"] == {"TOKEN": '{{ (secretFrom "/data/warehouse" "TOKEN").Value }}'}
    assert reads_per_refresh(plan.references) == 2  # the operator's one, and ESO's


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["plugins"]["secrets"]["config"]["operator"].update(api="v1alpha1"),
            "sources: prefix shares one InfisicalStaticSecret between references, which only api: v1beta1 has",
        ),
        (
            lambda d: None,
            "reference 'lake' declares no keys, and with operator.sources: prefix a Secret holds exactly "
            "its declared keys: declare them under secrets.lake.keys",
        ),
    ],
    ids=["v1alpha1", "keys-not-declared"],
)
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


@pytest.mark.parametrize(
    ("paths", "prefix"),
    [
        (["/a/b", "/a/c"], "/a"),
        (["/a/b"], "/a/b"),
        (["/a", "/b"], "/"),
        (["/a/b/c", "/a/b"], "/a/b"),
        (["/ab", "/a"], "/"),
    ],
)
def test_common_prefix_is_a_folder_not_a_string_prefix(paths: list[str], prefix: str) -> None:
    from floe_infra.plan.references import common_prefix

    assert common_prefix(paths) == prefix


def test_a_spec_change_not_reconciled_yet_is_pending_not_synced() -> None:
    """A new target added to a synced object: its last status is of the previous generation."""
    from floe_infra.day2.plugin_infisical import static_sync_states

    status = {
        "type": "secrets.infisical.com/LastReconcileStatus",
        "status": "True",
        "message": "ok",
        "observedGeneration": 1,
    }
    obj: dict[str, Any] = {
        "metadata": {"name": "floe-dev-data-x", "namespace": "infisical", "generation": 2},
        "spec": {
            "sources": [{"projectSlug": "p", "environmentSlug": "dev", "secretPath": "/data/x"}],
            "targets": [{"name": "new-one", "namespace": "floe-jobs"}],
        },
        "status": {"conditions": [status]},
    }
    assert [(s.name, s.status, s.message) for s in static_sync_states(obj)] == [
        ("new-one", "Pending", "not reconciled since its last change")
    ]
    obj["metadata"]["generation"] = 1
    assert [s.status for s in static_sync_states(obj)] == ["Synced"]


@pytest.mark.parametrize(("interval", "over"), [("20s", False), ("15s", True)], ids=["fits", "store-checks-tip-it"])
def test_esos_store_checks_count_against_the_budget(tmp_path: Path, interval: str, over: bool) -> None:
    """ESO validates each ClusterSecretStore (one per reference) every 5 minutes: 10 references at
    15 s are 40 reads a minute, and the 2 store checks a minute put them over."""
    doc = yaml.safe_load(manifest(10, interval))
    for ref in doc["secrets"].values():
        ref["via"] = "eso"
    plan = plan_of(tmp_path, yaml.safe_dump(doc))
    assert (plan.over_read_budget is not None) is over
    if over:
        assert (
            "(10 reads every 15s: plugins.secrets.config.resync_interval 15s, and 10 ESO store checks every 5 "
            "minutes)" in plan.over_read_budget
        )
