"""The pure plan: specs, namespaces, protection, outputs, and validity against the operator's CRD."""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import K8S_MANIFEST as K8S
from support import operator_crd, reference_file, with_operator_api

from floe_infra import ManifestError, StackConfigError, StackPlan, StackSettings, build_plan, load_manifest
from floe_infra.plan.desired import LOGIN_ANNOTATION
from floe_infra.plan.planner import deploy_config_problems, require_deploy_config

ROOT = Path(__file__).resolve().parents[1]
V1ALPHA1 = with_operator_api((ROOT / "manifest.yaml").read_text(), "v1alpha1")


def plan_for(tmp_path: Path, manifest: str | None = None, **settings: Any) -> StackPlan:
    path = ROOT / "manifest.yaml"
    if manifest is not None:
        path = tmp_path / "manifest.yaml"
        path.write_text(textwrap.dedent(manifest))
    values: dict[str, Any] = {"stack": "dev", "environment": "dev", "operator_credentials_set": True}
    values.update(settings)
    return build_plan(load_manifest(path), StackSettings(**values))


def test_infisical_secret_spec_is_exact(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, V1ALPHA1, environment="production")
    cr = next(o for o in plan.kube_objects() if o.name == "snowflake-credentials")
    assert cr.manifest() == {
        "apiVersion": "secrets.infisical.com/v1alpha1",
        "kind": "InfisicalSecret",
        "metadata": {
            "name": "snowflake-credentials",
            "namespace": "floe-jobs",
            "labels": {"app.kubernetes.io/managed-by": "floe-infra", "floe-infra/stack": "dev"},
            # Deleting it (removing or moving the reference) must leave the Secret pods use.
            "annotations": {"pulumi.com/deletionPropagationPolicy": "orphan"},
        },
        "spec": {
            "hostAPI": "https://infisical.company.com/api",
            "syncConfig": {"resyncInterval": "60s"},
            "authentication": {
                "universalAuth": {
                    "credentialsRef": {"secretName": "infisical-machine-identity", "secretNamespace": "infisical"},
                    "secretsScope": {
                        "projectSlug": "floe-platform",
                        "envSlug": "production",
                        "secretsPath": "/compute/snowflake",
                    },
                }
            },
            "managedKubeSecretReferences": [
                {
                    "secretName": "snowflake-credentials",
                    "secretNamespace": "floe-jobs",
                    "creationPolicy": "Orphan",
                    "secretType": "Opaque",
                }
            ],
        },
    }
    assert cr.depends_on == (
        "Namespace:floe-jobs",
        "ChartCRDs:infisical-secrets-operator",
        "Secret:infisical/infisical-machine-identity",
        "SecretValue:/compute/snowflake:SNOWFLAKE_PASSWORD",
        "SecretValue:/compute/snowflake:SNOWFLAKE_USER",
    )


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (None, [
            ("secrets.infisical.com/v1beta1", "InfisicalAuth", "infisical", "infisical-universal"),
            ("secrets.infisical.com/v1beta1", "InfisicalConnection", "infisical", "infisical"),
            ("secrets.infisical.com/v1beta1", "InfisicalStaticSecret", "floe-jobs", "catalog-credentials"),
            ("secrets.infisical.com/v1beta1", "InfisicalStaticSecret", "floe-jobs", "snowflake-credentials"),
        ]),
        ("v1alpha1", [
            ("secrets.infisical.com/v1alpha1", "InfisicalSecret", "floe-jobs", "catalog-credentials"),
            ("secrets.infisical.com/v1alpha1", "InfisicalSecret", "floe-jobs", "snowflake-credentials"),
        ]),
    ],
    ids=["unset-plans-v1beta1", "v1alpha1-when-named"],
)  # fmt: skip
def test_operator_api_is_v1beta1_unless_the_manifest_names_v1alpha1(
    tmp_path: Path, api: str | None, expected: list[tuple[str, str, str, str]]
) -> None:
    doc = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    operator = doc["plugins"]["secrets"]["config"]["operator"]
    assert "api" not in operator  # the example manifest leaves it to the default
    if api is not None:
        operator["api"] = api
    plan = plan_for(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    found = [o for o in plan.kube_objects() if o.api_version.startswith("secrets.infisical.com/")]
    assert sorted((o.api_version, o.kind, o.namespace, o.name) for o in found) == expected


def test_operator_release_and_identity(tmp_path: Path) -> None:
    plan = plan_for(tmp_path)
    assert plan.operator is not None
    release, identity = plan.operator.release, plan.operator.identity
    assert identity is not None
    assert (release.chart, release.version, release.namespace, release.name) == (
        "secrets-operator",
        "v0.11.5",
        "infisical",
        "infisical-secrets-operator",
    )
    assert release.repo == "https://dl.cloudsmith.io/public/infisical/helm-charts/helm/charts/"
    # The CRDs are not the release's: its replacement or uninstall would delete every InfisicalSecret.
    assert release.values == {"installCRDs": False, "hostAPI": "https://infisical.company.com/api"}
    crds = plan.operator.crds
    assert (crds.chart, crds.version, crds.repo, dict(crds.values)) == (
        release.chart,
        release.version,
        release.repo,
        {"installCRDs": True},
    )
    assert crds.logical_name == release.name  # the chart renders its labels from the release name
    assert crds.retain_on_delete and crds.id in release.depends_on
    assert set(identity.secret_data) == {"clientId", "clientSecret"}
    assert identity.manifest()["stringData"] == {
        "clientId": "<secret from floe:operatorClientId>",
        "clientSecret": "<secret from floe:operatorClientSecret>",
    }


@pytest.mark.parametrize(
    ("settings", "namespaces", "protected"),
    [
        ({}, ["infisical", "floe-jobs"], False),
        ({"create_namespaces": False}, [], False),
        ({"protect": True}, ["infisical", "floe-jobs"], True),
        ({"jobs_namespace": "etl"}, ["infisical", "etl", "floe-jobs"], False),
    ],
    ids=["default", "no-namespaces", "protect", "jobs-namespace"],
)
def test_namespaces_and_protection(
    tmp_path: Path, settings: dict[str, Any], namespaces: list[str], protected: bool
) -> None:
    plan = plan_for(tmp_path, **settings)
    assert [o.name for o in plan.kube_objects() if o.kind == "Namespace"] == namespaces
    # The operator's login material is never protected (a change of auth method deletes it).
    login = {r.id for r in plan.kube_objects() if LOGIN_ANNOTATION in r.annotations}
    assert login == {"Secret:infisical/infisical-machine-identity", "InfisicalAuth:infisical/infisical-universal"}
    assert {r.protect for r in plan.resources() if r.id not in login} == {protected}
    assert not any(r.protect for r in plan.resources() if r.id in login)
    if not namespaces:
        assert all(not d.startswith("Namespace:") for r in plan.resources() for d in r.depends_on)


def test_outputs_give_envfrom_and_workload_annotation(tmp_path: Path) -> None:
    text = (ROOT / "manifest.yaml").read_text() + "  catalog-credentials:\n    auto_reload: false\n"
    outputs = plan_for(tmp_path, text).outputs()
    assert outputs["catalog-credentials"] == {
        "secretName": "catalog-credentials",
        "namespace": "floe-jobs",
        "podSpec": {"envFrom": [{"secretRef": {"name": "catalog-credentials"}}]},
    }
    assert outputs["snowflake-credentials"]["workloadAnnotations"] == {"secrets.infisical.com/auto-reload": "true"}


def test_k8s_type_makes_plain_secrets_without_operator(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, K8S, secret_value_keys={"snowflake-credentials": frozenset({"SNOWFLAKE_USER", "EXTRA"})})
    assert plan.operator is None
    (secret,) = [o for o in plan.kube_objects() if o.kind == "Secret"]
    assert (secret.name, secret.namespace, secret.content) == ("snowflake-credentials", "floe-jobs", {"type": "Opaque"})
    assert secret.manifest()["stringData"] == {
        "EXTRA": "<secret from floe:secretValues.snowflake-credentials.EXTRA>",
        "SNOWFLAKE_PASSWORD": "<generated: 24 characters>",
        "SNOWFLAKE_USER": "<secret from floe:secretValues.snowflake-credentials.SNOWFLAKE_USER>",
    }
    assert list(secret.generated()) == ["floe-jobs/snowflake-credentials/SNOWFLAKE_PASSWORD"]
    assert "workloadAnnotations" not in plan.outputs()["snowflake-credentials"]
    # Its generate: key needs the mark of `floe secrets upgrade` (type k8s has no check of its own).
    (problem,) = deploy_config_problems(plan)
    assert problem.endswith(
        "run `floe secrets upgrade --stack dev` once (it moves them unchanged and sets "
        "floe:passwords random; on a new stack it only sets that)"
    )
    upgraded = plan_for(
        tmp_path, K8S, passwords="random", secret_value_keys={"snowflake-credentials": frozenset({"SNOWFLAKE_USER"})}
    )
    assert deploy_config_problems(upgraded) == []


def test_k8s_missing_value_names_the_exact_command(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, K8S, secret_value_keys={})
    with pytest.raises(
        StackConfigError,
        match=re.escape(
            "no value for key SNOWFLAKE_USER of reference snowflake-credentials: run "
            "`pulumi config set --secret --path --stack dev "
            "'floe:secretValues.snowflake-credentials.SNOWFLAKE_USER' <value>`"
        ),
    ):
        require_deploy_config(plan)


def test_a_reference_name_with_a_dot_is_quoted_in_the_command(tmp_path: Path) -> None:
    """`--path` reads a dot as nesting: a reference named db.main is one object key."""
    plan = plan_for(tmp_path, K8S.replace("snowflake-credentials", "snowflake.credentials"), secret_value_keys={})
    assert any(
        "`pulumi config set --secret --path --stack dev 'floe:secretValues[\"snowflake.credentials\"].SNOWFLAKE_USER'"
        " <value>`" in p
        for p in deploy_config_problems(plan)
    ), deploy_config_problems(plan)


def test_missing_operator_identity_names_both_commands(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, operator_credentials_set=False)
    (problem,) = deploy_config_problems(plan)
    assert "pulumi config set --secret --stack dev 'floe:operatorClientId' <client-id>" in problem
    assert "pulumi config set --secret --stack dev 'floe:operatorClientSecret' <client-secret>" in problem


TARGET_CONFLICTS = [
    (
        "reference-over-identity-secret",
        "  infisical-machine-identity:\n    namespace: infisical\n",
        r"reference 'infisical-machine-identity' would write Secret "
        r"infisical/infisical-machine-identity, which plugins\.secrets\.config\.identity_secret",
    ),
    (
        "reference-over-the-token-reviewers-secret",
        "  infisical-token-reviewer:\n    namespace: infisical\n",
        r"reference 'infisical-token-reviewer' would write Secret infisical/infisical-token-reviewer, which the "
        r"token reviewer's token Secret \(identities: managed\) already targets",
    ),
    (
        "two-writers-of-one-infisical-key",
        "  snowflake-admin:\n    path: /compute/snowflake\n    keys:\n      SNOWFLAKE_PASSWORD: {generate: {}}\n",
        r"line \d+: secrets\.snowflake-credentials: references 'snowflake-admin' and 'snowflake-credentials' "
        r"both write key SNOWFLAKE_PASSWORD into Infisical folder /compute/snowflake",
    ),
]


@pytest.mark.parametrize(("extra", "match"), [c[1:] for c in TARGET_CONFLICTS], ids=[c[0] for c in TARGET_CONFLICTS])
def test_two_writers_of_one_target_are_rejected(tmp_path: Path, extra: str, match: str) -> None:
    text = (ROOT / "manifest.yaml").read_text() + extra
    if "token-reviewer" in extra:  # managed Kubernetes Auth makes the reviewer
        managed = "      identities: managed\n      operator:\n        auth: kubernetes\n"
        text = text.replace("      operator:\n", managed)
    with pytest.raises(ManifestError, match=match):
        plan_for(tmp_path, text, operator_credentials_set=False)


def test_missing_writer_identity_names_the_commands(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, writer_credentials_set=False)
    (problem,) = [p for p in deploy_config_problems(plan) if "writer" in p]
    assert "pulumi config set --stack dev 'infisical:clientId' <client-id>" in problem
    assert "pulumi config set --secret --stack dev 'infisical:clientSecret' <client-secret>" in problem


def test_values_written_into_infisical(tmp_path: Path) -> None:
    values = {v.key: v for v in plan_for(tmp_path).infisical_values()}
    assert set(values) == {"SNOWFLAKE_PASSWORD", "SNOWFLAKE_USER"}  # SNOWFLAKE_ACCOUNT is set by hand
    password, user = values["SNOWFLAKE_PASSWORD"], values["SNOWFLAKE_USER"]
    assert (password.project_slug, password.environment, password.path) == (
        "floe-platform",
        "dev",
        "/compute/snowflake",
    )
    assert password.source.generate is not None and password.source.rotation is None
    assert (password.source.generate.length, password.source.generate.special) == (32, False)
    assert user.source.config_path == ("snowflake-credentials", "SNOWFLAKE_USER")
    assert password.site_url == "https://infisical.company.com"


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation: unknown fields fail."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    crd = operator_crd(kind)
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_infisical_secret_validates_against_the_operator_crd(tmp_path: Path, stack: str) -> None:
    validator = crd_validator("InfisicalSecret")
    objects = [
        o.manifest()
        for o in plan_for(tmp_path, V1ALPHA1, environment=stack).kube_objects()
        if o.kind == "InfisicalSecret"
    ]
    assert len(objects) == 2
    for obj in objects:
        errors = [e.message for e in validator.iter_errors(obj)]
        assert errors == []
        spec = obj["spec"]
        assert not {"managedSecretReference", "resyncInterval", "instantUpdates"} & set(spec)


def test_crd_check_would_catch_a_deprecated_or_misspelt_field(tmp_path: Path) -> None:
    validator = crd_validator("InfisicalSecret")
    obj = next(o.manifest() for o in plan_for(tmp_path, V1ALPHA1).kube_objects() if o.kind == "InfisicalSecret")
    obj["spec"]["resyncIntervall"] = "60s"
    obj["spec"]["authentication"]["universalAuth"]["secretsScope"].pop("envSlug")
    messages = sorted(e.message for e in validator.iter_errors(obj))
    assert any("resyncIntervall" in m for m in messages)
    assert any("'envSlug' is a required property" in m for m in messages)


def test_chart_defaults_match_the_reference_chart() -> None:
    chart = yaml.safe_load(reference_file("secrets-operator-Chart.yaml").read_text())
    values = yaml.safe_load(reference_file("secrets-operator-values.yaml").read_text())
    from floe_infra.model.manifest import DEFAULT_CHART_VERSION
    from floe_infra.plan.vocabulary import CHART_NAME

    assert (chart["name"], chart["version"]) == (CHART_NAME, DEFAULT_CHART_VERSION)
    assert {"installCRDs", "hostAPI"} <= set(values)


def test_crds_come_from_a_rendered_chart_when_the_workflow_provides_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On GitHub there is no ../shared: the workflow renders the pinned chart's CRDs (helm template)
    into one multi-document file and names it in FLOE_OPERATOR_CRDS; the schema tests read that."""
    docs = [reference_file(f"{k.lower()}-crd.yaml").read_text() for k in ("InfisicalAuth", "InfisicalSecret")]
    rendered = tmp_path / "operator-crds.yaml"
    rendered.write_text("---\n# Source: secrets-operator/templates/x.yaml\n" + "\n---\n".join(docs))
    monkeypatch.setenv("FLOE_OPERATOR_CRDS", str(rendered))
    assert operator_crd("InfisicalSecret")["metadata"]["name"] == "infisicalsecrets.secrets.infisical.com"
    with pytest.raises(AssertionError, match="has no CustomResourceDefinition for InfisicalStaticSecret"):
        operator_crd("InfisicalStaticSecret")
