"""Moving between sync mechanisms: operator v1beta1 (InfisicalStaticSecret) and External Secrets Operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, RunProgram, default_config, with_operator_api
from test_plan import crd_validator, plan_for

from floe_infra import KubeObject, ManifestError
from floe_infra.model import names
from floe_infra.model.names import go_duration
from floe_infra.plan.vocabulary import ORPHAN_ON_DELETE

EXAMPLE = (ROOT / "manifest.yaml").read_text()
V1ALPHA1 = with_operator_api(EXAMPLE, "v1alpha1")
V1BETA1 = with_operator_api(EXAMPLE, "v1beta1")
ESO = EXAMPLE.replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n")
ESO_INSTALLED = ESO.replace("      operator:\n", "      eso: {install: true, chart_version: 0.16.2}\n      operator:\n")
ES = "kubernetes:external-secrets.io/v1:ExternalSecret"
STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"
CR = "kubernetes:secrets.infisical.com/v1alpha1:InfisicalSecret"
STATIC = "kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret"
OPERATOR_KIND = {"v1alpha1": "InfisicalSecret", "v1beta1": "InfisicalStaticSecret"}


def objects(tmp_path: Path, manifest: str, kind: str) -> list[KubeObject]:
    return [o for o in plan_for(tmp_path, manifest).kube_objects() if o.kind == kind]


# --- operator v1beta1 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "count"),
    [("InfisicalConnection", 1), ("InfisicalAuth", 1), ("InfisicalStaticSecret", 2)],
    ids=["connection", "auth", "static-secret"],
)
def test_v1beta1_objects_validate_against_the_operator_crds(tmp_path: Path, kind: str, count: int) -> None:
    validator = crd_validator(kind)
    found = objects(tmp_path, V1BETA1, kind)
    assert len(found) == count
    for obj in found:
        assert [e.message for e in validator.iter_errors(obj.manifest())] == []


def test_v1beta1_replaces_infisical_secrets(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, V1BETA1)
    assert [o for o in plan.kube_objects() if o.kind == "InfisicalSecret"] == []
    (static,) = [
        o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret" and o.name == "snowflake-credentials"
    ]
    spec = static.content["spec"]
    assert spec["infisicalAuthRef"] == {"name": "infisical-universal", "namespace": "infisical"}
    assert spec["sources"] == [
        {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretPath": "/compute/snowflake"}
    ]
    assert spec["targets"] == [
        {"kind": "Secret", "name": "snowflake-credentials", "namespace": "floe-jobs",
         "creationPolicy": "Orphan", "secretType": "Opaque"}
    ]  # fmt: skip
    assert spec["syncOptions"] == {"refreshInterval": "60s"}
    assert "InfisicalAuth:infisical/infisical-universal" in static.depends_on
    assert plan.outputs() == plan_for(tmp_path, V1ALPHA1).outputs()  # pods see no difference
    auth = next(o for o in plan.kube_objects() if o.kind == "InfisicalAuth")
    assert auth.content["spec"]["universal"]["clientSecretRef"] == {
        "name": "infisical-machine-identity", "namespace": "infisical", "key": "clientSecret"
    }  # fmt: skip
    connection = next(o for o in plan.kube_objects() if o.kind == "InfisicalConnection")
    assert connection.content["spec"] == {"address": "https://infisical.company.com"}


@pytest.mark.parametrize(("interval", "go"), [("60s", "60s"), ("5m", "300s"), ("1d", "86400s"), ("2w", "1209600s")])
def test_intervals_become_go_durations(interval: str, go: str) -> None:
    assert go_duration(interval) == go


# --- External Secrets Operator ------------------------------------------------------------


@pytest.mark.parametrize("api", ["v1alpha1", "v1beta1"])
def test_eso_reference_gets_a_store_and_an_external_secret_for_the_same_secret(tmp_path: Path, api: str) -> None:
    plan = plan_for(tmp_path, with_operator_api(ESO, api))
    (store,) = [o for o in plan.kube_objects() if o.kind == "ClusterSecretStore"]
    (external,) = [o for o in plan.kube_objects() if o.kind == "ExternalSecret"]
    # the other reference stays with the operator, through the API the manifest names
    operator_synced = [(o.kind, o.name) for o in plan.kube_objects() if o.kind in OPERATOR_KIND.values()]
    assert operator_synced == [(OPERATOR_KIND[api], "catalog-credentials")]
    assert (store.api_version, external.api_version) == ("external-secrets.io/v1", "external-secrets.io/v1")
    assert store.namespace is None and store.name == "floe-dev-snowflake-credentials"
    assert store.content["spec"]["provider"]["infisical"] == {
        "hostAPI": "https://infisical.company.com",
        "auth": {"universalAuthCredentials": {
            "clientId": {"name": "infisical-machine-identity", "namespace": "infisical", "key": "clientId"},
            "clientSecret": {"name": "infisical-machine-identity", "namespace": "infisical", "key": "clientSecret"},
        }},
        "secretsScope": {"projectSlug": "floe-platform", "environmentSlug": "dev", "secretsPath": "/compute/snowflake"},
    }  # fmt: skip
    assert external.namespace == "floe-jobs"
    assert store.content["spec"]["conditions"] == [{"namespaces": ["floe-jobs"]}]
    assert external.content["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": store.name}
    assert external.content["spec"]["target"] == {
        "name": "snowflake-credentials", "creationPolicy": "Orphan", "deletionPolicy": "Retain"
    }  # fmt: skip
    assert set(external.depends_on) >= {store.id, "SecretValue:/compute/snowflake:SNOWFLAKE_PASSWORD"}
    # What pods consume does not change; the operator's auto-reload annotation goes (ESO never acts on it).
    operator_outputs = plan_for(tmp_path, with_operator_api(EXAMPLE, api)).outputs()
    assert operator_outputs["snowflake-credentials"].pop("workloadAnnotations")
    assert plan.outputs() == operator_outputs


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("floe", "dev", "snowflake-credentials"), "floe-dev-snowflake-credentials"),
        (("floe", "Dev_Stack", "app"), "floe-dev-stack-app"),
        (("floe", "s" * 100, "r" * 253), None),
    ],
    ids=["plain", "stack-name-with-capitals-and-underscore", "too-long-is-cut-with-a-hash"],
)
def test_store_names_are_valid_kubernetes_names(parts: tuple[str, ...], expected: str | None) -> None:
    name = names.object_name(*parts)
    assert names.dns_name(name) == name
    if expected is not None:
        assert name == expected
    else:
        assert len(name) == 253
        assert name != names.object_name("floe", "s" * 100, "r" * 252 + "x")


def test_eso_is_installed_only_when_asked_with_its_crds_outside_the_release(tmp_path: Path) -> None:
    assert plan_for(tmp_path, ESO).operator.eso is None  # type: ignore[union-attr]
    plan = plan_for(tmp_path, ESO_INSTALLED)
    assert plan.operator is not None and plan.operator.eso is not None and plan.operator.eso_crds is not None
    release, crds = plan.operator.eso, plan.operator.eso_crds
    assert (release.chart, release.version, release.namespace) == ("external-secrets", "0.16.2", "external-secrets")
    assert release.values == {"installCRDs": False} and crds.values == {"installCRDs": True}
    assert (crds.chart, crds.version, crds.retain_on_delete) == ("external-secrets", "0.16.2", True)
    assert crds.id in release.depends_on
    store = next(o for o in plan.kube_objects() if o.kind == "ClusterSecretStore")
    assert {release.id, crds.id} <= set(store.depends_on)
    assert "external-secrets" in [n.name for n in plan.kube_objects() if n.kind == "Namespace"]


def test_eso_stays_installed_until_install_is_false(tmp_path: Path) -> None:
    """Leaving ESO: the `up` that removes the last via: eso keeps ESO (and its CRDs, which are never
    in the release): it goes only when the manifest says install: false."""
    unused = ESO_INSTALLED.replace("    via: eso\n", "")
    assert "via: eso" not in unused
    plan = plan_for(tmp_path, unused)
    assert plan.operator is not None and plan.operator.eso is not None
    assert not [o for o in plan.kube_objects() if o.kind in ("ClusterSecretStore", "ExternalSecret")]


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (
            {"installCRDs": True},
            r"eso\.values: .*installCRDs: True is refused: the stack applies ESO's CRDs itself.*"
            r"remove it from eso\.values",
        ),
        (
            {"processClusterStore": False},
            r"processClusterStore: False is refused: the stack's ClusterSecretStores need",
        ),
        ({"createOperator": False}, r"createOperator: False is refused"),
        ({"scopedNamespace": "team-a"}, r"scopedNamespace: 'team-a' is refused: a namespace-scoped ESO ignores"),
        ({"scopedRBAC": True}, r"scopedRBAC: True is refused"),
        ({"crds": {"createClusterSecretStore": False}}, r"crds\.createClusterSecretStore: False is refused"),
        ({"podLabels": {"1": {"2": None}}, "tolerations": [{"effect": "NoSchedule"}]}, None),
        ("webhook", r"line 10: plugins\.secrets\.config\.eso\.values: must be a mapping .*found 'webhook'"),
    ],
    ids=[
        "install-crds",
        "no-cluster-store",
        "no-controller",
        "scoped-namespace",
        "scoped-rbac",
        "no-store-crd",
        "json-fine",
        "not-a-map",
    ],
)
def test_eso_values_are_checked_with_the_field_and_the_fix(tmp_path: Path, values: Any, error: str) -> None:
    eso = f"      eso: {{install: true, chart_version: 0.16.2, values: {json.dumps(values)}}}\n"
    text = ESO.replace("      operator:\n", eso + "      operator:\n")
    if error is None:
        plan_for(tmp_path, text)
        return
    with pytest.raises(ManifestError, match=error):
        plan_for(tmp_path, text)


def test_eso_needs_a_chart_version_when_installed_naming_both(tmp_path: Path) -> None:
    text = ESO.replace("      operator:\n", "      eso: {install: true}\n      operator:\n")
    with pytest.raises(
        ManifestError,
        match=r"eso\.install: true needs eso\.chart_version: 0\.16\.2 is the version "
        r"floe-infra runs.*set 1\.3\.1 to keep it",
    ):
        plan_for(tmp_path, text)


def test_eso_values_must_be_helm_values(tmp_path: Path) -> None:
    eso = "      eso: {install: true, chart_version: 0.16.2, values: {podLabels: {1: on, when: 2026-12-06}}}\n"
    with pytest.raises(ManifestError, match=r"values\.podLabels: key 1 is not a string: quote it"):
        plan_for(tmp_path, ESO.replace("      operator:\n", eso + "      operator:\n"))


def test_eso_values_reach_its_chart_under_the_stacks_installcrds(tmp_path: Path) -> None:
    eso = "      eso: {install: true, chart_version: 0.16.2, values: {webhook: {create: false}}}\n"
    text = ESO.replace("      operator:\n", eso + "      operator:\n")
    plan = plan_for(tmp_path, text)
    assert plan.operator is not None and plan.operator.eso is not None and plan.operator.eso_crds is not None
    assert plan.operator.eso.values == {"webhook": {"create": False}, "installCRDs": False}
    assert plan.operator.eso_crds.values == {"webhook": {"create": False}, "installCRDs": True}


def test_eso_needs_type_infisical(tmp_path: Path) -> None:
    text = "plugins:\n  secrets:\n    type: k8s\nsecrets:\n  app:\n    via: eso\n"
    with pytest.raises(
        ManifestError, match=r"line 6: secrets\.app\.via: via: eso reads Infisical .* needs type infisical"
    ):
        plan_for(tmp_path, text)


# --- the switch, under Pulumi's mocks -----------------------------------------------------


def _sync_of(run: Any, name: str) -> list[Any]:
    return [r for r in run.registrations if r.type in (CR, STATIC, ES) and r.name == f"floe-jobs/{name}"]


@pytest.mark.parametrize("api", ["v1alpha1", "v1beta1"])
@pytest.mark.parametrize(
    ("before", "after"), [(EXAMPLE, ESO), (ESO, EXAMPLE)], ids=["operator-to-eso", "eso-to-operator"]
)
def test_switching_a_reference_keeps_the_secret_its_pods_use(
    run_program: RunProgram, before: str, after: str, api: str
) -> None:
    """Both syncers write the same Secret, neither owns it away from the other, and deleting the
    old one (Pulumi deletes after it creates) orphans the Secret instead of deleting it."""
    old, new = run_program(with_operator_api(before, api)), run_program(with_operator_api(after, api))
    (old_sync,), (new_sync,) = _sync_of(old, "snowflake-credentials"), _sync_of(new, "snowflake-credentials")
    assert {old_sync.type, new_sync.type} == {ES, {"v1alpha1": CR, "v1beta1": STATIC}[api]}
    for sync in (old_sync, new_sync):
        assert sync.plain("metadata")["annotations"] == ORPHAN_ON_DELETE
    target = {
        CR: lambda r: {(t["secretName"], t["secretNamespace"]) for t in r.plain("spec")["managedKubeSecretReferences"]},
        STATIC: lambda r: {(t["name"], t["namespace"]) for t in r.plain("spec")["targets"]},
        ES: lambda r: {(r.plain("spec")["target"]["name"], r.plain("metadata")["namespace"])},
    }
    assert (
        target[old_sync.type](old_sync) == target[new_sync.type](new_sync) == {("snowflake-credentials", "floe-jobs")}
    )
    if new_sync.type == ES:
        assert new_sync.plain("spec")["target"]["creationPolicy"] == "Orphan"
        store = new.named(STORE, "floe-dev-snowflake-credentials")
        assert store.urn in new_sync.dependencies
    # The envFrom fragment workloads use does not change; only the operator acts on its annotation.
    for outputs in (old.outputs, new.outputs):
        outputs["secrets"]["snowflake-credentials"].pop("workloadAnnotations", None)
    assert old.outputs == new.outputs
    # The other reference is untouched by the switch.
    assert _sync_of(old, "catalog-credentials")[0].inputs == _sync_of(new, "catalog-credentials")[0].inputs


def test_program_registers_v1beta1_and_eso_as_planned(run_program: RunProgram) -> None:
    both = V1BETA1.replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n")
    run = run_program(both, config=default_config("dev"))
    kinds = sorted({r.type.rsplit(":", 1)[1] for r in run.registrations if r.type.startswith("kubernetes:")})
    assert kinds == sorted(
        ["Namespace", "Chart", "CustomResourceDefinition", "Release", "Secret", "InfisicalConnection",
         "InfisicalAuth", "InfisicalStaticSecret", "ClusterSecretStore", "ExternalSecret"]
    )  # fmt: skip
