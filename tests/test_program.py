"""The Pulumi program under mocks: what it registers must be exactly what the plan says."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
from support import (
    CHART_OBJECTS,
    K8S_MANIFEST,
    RENDERED,
    ROOT,
    ProgramRun,
    RunProgram,
    default_config,
    with_operator_api,
)

from floe_infra import HelmRelease, build_plan, load_manifest, parse_stack_config
from floe_infra.plan.desired import PASSWORD_TYPE, ChartCrds, InfisicalValue

CR = "kubernetes:secrets.infisical.com/v1alpha1:InfisicalSecret"
STATIC = "kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret"
CONNECTION = "kubernetes:secrets.infisical.com/v1beta1:InfisicalConnection"
AUTH = "kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
RELEASE = "kubernetes:helm.sh/v3:Release"
PASSWORD = PASSWORD_TYPE
VALUE = "pulumi-python:dynamic/infisical:SecretValue"
CLUSTER = "pulumi:providers:kubernetes"
CHART = "kubernetes:helm.sh/v3:Chart"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
CHART_CRDS = sorted(o["metadata"]["name"] for o in CHART_OBJECTS if o["kind"] == "CustomResourceDefinition")


def _crds_of(chart: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in RENDERED[chart] if o["kind"] == "CustomResourceDefinition")


EXAMPLE = (ROOT / "manifest.yaml").read_text()
V1ALPHA1 = with_operator_api(EXAMPLE, "v1alpha1")
_ESO = "      eso: {install: true, chart_version: 0.16.2}\n"
V1BETA1_AND_ESO = with_operator_api(
    EXAMPLE.replace("      operator:\n", _ESO + "      operator:\n").replace(
        "    auto_reload: true\n", "    auto_reload: true\n    via: eso\n"
    ),
    "v1beta1",
)
K8S_VALUES = {"snowflake-credentials": {"SNOWFLAKE_USER": "user-canary"}}


def k8s_config(stack: str = "dev") -> dict[str, Any]:
    return {"floe:environment": stack, "floe:secretValues": K8S_VALUES, "floe:passwords": "random"}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_resource_types_names_and_parents(run_program: RunProgram, stack: str) -> None:
    run = run_program(stack=stack)
    summary = sorted((r.type, r.name, r.parent.rsplit("::", 1)[-1]) for r in run.registrations)
    assert summary == sorted(
        [
            ("floe:secrets:Platform", "floe-secrets", f"floe-{stack}"),
            (CLUSTER, "cluster", "floe-secrets"),
            ("floe:secrets:InfisicalOperator", "infisical-operator", "floe-secrets"),
            (NAMESPACE, "infisical", "infisical-operator"),
            (CHART, "infisical-secrets-operator", "infisical-operator"),
            *((CRD, name, "infisical-secrets-operator") for name in CHART_CRDS),
            (RELEASE, "infisical-secrets-operator", "infisical-operator"),
            (SECRET, "infisical/infisical-machine-identity", "infisical-operator"),
            (CONNECTION, "infisical/infisical", "infisical-operator"),
            (AUTH, "infisical/infisical-universal", "infisical-operator"),
            (NAMESPACE, "floe-jobs", "floe-secrets"),
            (STATIC, "floe-jobs/catalog-credentials", "floe-secrets"),
            (STATIC, "floe-jobs/snowflake-credentials", "floe-secrets"),
            (VALUE, "/compute/snowflake:SNOWFLAKE_PASSWORD", "floe-secrets"),
            (VALUE, "/compute/snowflake:SNOWFLAKE_USER", "floe-secrets"),
            (PASSWORD, "/compute/snowflake:SNOWFLAKE_PASSWORD", "floe-secrets"),
        ]
    )
    static = run.named(STATIC, "floe-jobs/snowflake-credentials").plain("spec")
    assert [source["environmentSlug"] for source in static["sources"]] == [stack]


@pytest.mark.parametrize("api", ["v1alpha1", "v1beta1"])
def test_each_custom_resource_depends_on_its_crd_identity_and_namespace_not_on_the_release(
    run_program: RunProgram, api: str
) -> None:
    """The API server needs the CRDs, the namespace and the identity Secret (v1beta1: through the
    InfisicalAuth that names it); the operator can start later and reconcile then. Not waiting on
    the Helm install lets both proceed at once."""
    run = run_program(with_operator_api(EXAMPLE, api))
    release = run.named(RELEASE, "infisical-secrets-operator")
    identity = run.named(SECRET, "infisical/infisical-machine-identity")
    jobs = run.named(NAMESPACE, "floe-jobs")
    operator_ns = run.named(NAMESPACE, "infisical")
    values = {r.urn for r in run.of_type(VALUE)}
    crds = [r.urn for r in run.of_type(CRD)]
    kind, reader = CR, identity.urn
    if api == "v1beta1":
        connection = run.named(CONNECTION, "infisical/infisical")
        auth = run.named(AUTH, "infisical/infisical-universal")
        assert set(connection.dependencies) == {*crds, operator_ns.urn}
        assert set(auth.dependencies) == {*crds, operator_ns.urn, identity.urn, connection.urn}
        kind, reader = STATIC, auth.urn
    catalog = run.named(kind, "floe-jobs/catalog-credentials")
    assert set(catalog.dependencies) == {*crds, reader, jobs.urn}
    snowflake = run.named(kind, "floe-jobs/snowflake-credentials")
    assert set(snowflake.dependencies) == {*crds, reader, jobs.urn, *values}
    assert len(crds) == len(CHART_CRDS) and sorted(release.dependencies) == sorted([operator_ns.urn, *crds])
    assert identity.dependencies == [operator_ns.urn]


def test_release_inputs(run_program: RunProgram) -> None:
    release = run_program().named(RELEASE, "infisical-secrets-operator")
    assert release.plain("chart") == "secrets-operator"
    assert release.plain("version") == "v0.11.5"
    assert release.plain("repositoryOpts") == {
        "repo": "https://dl.cloudsmith.io/public/infisical/helm-charts/helm/charts/"
    }
    assert release.plain("namespace") == "infisical"
    assert release.plain("name") == "infisical-secrets-operator"
    assert release.plain("skipCrds") is False
    assert release.plain("createNamespace") is False


def test_identity_secret_values_are_pulumi_secrets(run_program: RunProgram) -> None:
    identity = run_program().named(SECRET, "infisical/infisical-machine-identity")
    assert identity.secret_inputs() == {"stringData"}
    assert identity.plain("stringData") == {"clientId": "client-id-canary", "clientSecret": "client-secret-canary"}
    assert {"data", "stringData"} <= set(identity.additional_secret_outputs)


@pytest.mark.parametrize(
    ("stack", "config", "protected"),
    [("dev", {}, False), ("prod", {"floe:protect": "true", "floe:kubeContext": "floe-prod"}, True)],
    ids=["dev-unprotected", "prod-protected"],
)
def test_protect_flag(run_program: RunProgram, stack: str, config: dict[str, Any], protected: bool) -> None:
    run = run_program(stack=stack, config={**default_config(stack), **config})
    custom = [r for r in run.registrations if not r.type.startswith(("floe:", "pulumi:providers:"))]
    # Passwords live only in the state: protect would only refuse their rotation (test_password.py);
    # the operator's login material is made again by the stack (test_policy.py).
    login = [r for r in custom if "floe-infra/login" in ((r.plain("metadata") or {}).get("annotations") or {})]
    assert sorted(r.name for r in login) == ["infisical/infisical-machine-identity", "infisical/infisical-universal"]
    assert not any(r.protect for r in login)
    assert custom and {r.protect for r in custom if r.type != PASSWORD and r not in login} == {protected}
    assert {r.protect for r in custom if r.type == PASSWORD} == {False}


@pytest.mark.parametrize(
    ("context", "expected"),
    [({}, None), ({"floe:kubeContext": "floe-prod"}, "floe-prod")],
    ids=["current-context", "named-context"],
)
def test_every_kubernetes_object_goes_through_the_stacks_cluster_provider(
    run_program: RunProgram, context: dict[str, Any], expected: str | None
) -> None:
    """Not the default provider: `pulumi up -s prod` must not deploy to whatever context is current."""
    run = run_program(config={**default_config("dev"), **context})
    (cluster,) = run.of_type(CLUSTER)
    assert cluster.plain("context") == expected
    # A Secret whose data changes is updated, not replaced (a protected stack refuses a replace).
    assert cluster.plain("enableSecretMutable") == "true"
    kube = [r for r in run.registrations if r.type.startswith("kubernetes:") and r.type != CHART]  # components
    assert kube and {r.provider.rsplit("::", 1)[0] for r in kube} == {cluster.urn}  # provider ref: urn::id
    assert all(r.provider == "" for r in run.registrations if r.type.startswith("pulumi-python:"))


def test_namespaces_are_retained_when_the_stack_lets_go_of_them(run_program: RunProgram) -> None:
    """Deleting a namespace deletes every workload in it: removing the last reference, turning
    createNamespaces off or destroying the stack must leave it in the cluster."""
    run = run_program()
    namespaces = run.of_type(NAMESPACE)
    assert namespaces and all(n.retain_on_delete for n in namespaces)
    assert not any(r.retain_on_delete for r in run.registrations if r.type not in (NAMESPACE, CHART, CRD))


def test_renaming_a_reference_keeps_every_value_and_password(run_program: RunProgram) -> None:
    """A value is named by what it manages (<path>:<KEY>): renaming the reference that holds it
    changes no URN, so `pulumi up` neither creates it again ("already exists") nor deletes it."""
    manifest = (ROOT / "manifest.yaml").read_text()
    before = run_program(manifest)
    config = {**default_config("dev"), "floe:secretValues": {"snowflake-creds": {"SNOWFLAKE_USER": "user-canary"}}}
    after = run_program(manifest.replace("snowflake-credentials", "snowflake-creds"), config=config)
    assert after.of_type(STATIC) and {r.name for r in after.of_type(STATIC)} >= {"floe-jobs/snowflake-creds"}
    urns = {r.urn for r in before.registrations if r.type in (VALUE, PASSWORD)}
    assert len(urns) == 3
    assert urns == {r.urn for r in after.registrations if r.type in (VALUE, PASSWORD)}


def test_renamed_from_aliases_the_value_and_its_password_to_the_old_key(run_program: RunProgram) -> None:
    manifest = (
        (ROOT / "manifest.yaml")
        .read_text()
        .replace("SNOWFLAKE_PASSWORD: {generate:", "SNOWFLAKE_PASS: {renamed_from: SNOWFLAKE_PASSWORD, generate:")
    )
    run = run_program(manifest)
    for typ in (VALUE, PASSWORD):
        old_key = "/compute/snowflake:SNOWFLAKE_PASSWORD"
        assert sorted(run.named(typ, "/compute/snowflake:SNOWFLAKE_PASS").aliases) == sorted(
            [
                (old_key, ""),  # the old key under the platform
                ("urn", FORMER.format(stack="dev", type=typ, name="/compute/snowflake:SNOWFLAKE_PASS")),
                ("urn", FORMER.format(stack="dev", type=typ, name=old_key)),  # both, under the old component
            ]
        )
    assert run.named(VALUE, "/compute/snowflake:SNOWFLAKE_USER").aliases == [
        ("urn", FORMER.format(stack="dev", type=VALUE, name="/compute/snowflake:SNOWFLAKE_USER"))
    ]


FORMER = "urn:pulumi:{stack}::floe::floe:secrets:Platform$floe:secrets:SecretReference${type}::{name}"
"""The URN an object had under the component each reference had until 2026-11."""


@pytest.mark.parametrize("manifest", ["infisical", "k8s"], ids=["type-infisical", "type-k8s"])
def test_stacks_made_with_a_component_per_reference_keep_every_object(run_program: RunProgram, manifest: str) -> None:
    # Until 2026-11 each reference's objects were children of a floe:secrets:SecretReference
    # component; without an alias to it, the next up would delete and recreate every one of them,
    # values in Infisical included.
    run = run_program() if manifest == "infisical" else run_program(K8S_MANIFEST, config=k8s_config())
    references = [
        r
        for r in run.registrations
        if r.type in (CR, STATIC, VALUE, PASSWORD) or (r.type == SECRET and not r.name.startswith("infisical/"))
    ]
    assert references
    for r in references:  # a plain URN: the SDK sends it without waiting for the platform's URN
        assert r.aliases == [("urn", FORMER.format(stack="dev", type=r.type, name=r.name))], r.name


def test_a_failed_release_install_or_upgrade_is_undone(run_program: RunProgram) -> None:
    release = run_program().named(RELEASE, "infisical-secrets-operator")
    assert (release.plain("atomic"), release.plain("cleanupOnFail")) == (True, True)


def test_a_release_moved_to_another_namespace_is_deleted_before_its_successor_installs(
    run_program: RunProgram,
) -> None:
    # Both would own the same cluster-wide objects (ClusterRoles): the successor's install would fail.
    # Its name holds no namespace, so a move is a replacement of this resource, not a second release.
    release = run_program().named(RELEASE, "infisical-secrets-operator")
    assert release.delete_before_replace
    assert release.aliases == [("infisical/infisical-secrets-operator", "")]  # its name until 2026-11


def test_create_namespaces_false_creates_none(run_program: RunProgram) -> None:
    run = run_program(config={**default_config("dev"), "floe:createNamespaces": "false"})
    assert run.of_type(NAMESPACE) == []
    crds = {r.urn for r in run.of_type(CRD)}
    assert crds and set(run.named(RELEASE, "infisical-secrets-operator").dependencies) == crds


def test_stack_output_secrets(run_program: RunProgram) -> None:
    outputs = run_program().outputs["secrets"]
    assert outputs["snowflake-credentials"] == {
        "secretName": "snowflake-credentials",
        "namespace": "floe-jobs",
        "podSpec": {"envFrom": [{"secretRef": {"name": "snowflake-credentials"}}]},
        "workloadAnnotations": {"secrets.infisical.com/auto-reload": "true"},
    }


def test_k8s_type_secret_values_are_secret_and_generated(run_program: RunProgram) -> None:
    run = run_program(K8S_MANIFEST, config=k8s_config())
    assert run.of_type(RELEASE) == [] and run.of_type(CR) == []
    secret = run.named(SECRET, "floe-jobs/snowflake-credentials")
    password = run.named(PASSWORD, "floe-jobs/snowflake-credentials/SNOWFLAKE_PASSWORD")
    assert (password.plain("length"), password.plain("special")) == (24, False)
    assert secret.secret_inputs() == {"stringData"}
    assert secret.plain("stringData") == {
        "SNOWFLAKE_PASSWORD": "generated-floe-jobs/snowflake-credentials/SNOWFLAKE_PASSWORD",
        "SNOWFLAKE_USER": "user-canary",
    }
    assert run.named(NAMESPACE, "floe-jobs").urn in secret.dependencies


def test_generated_and_config_keys_are_written_into_infisical_as_secrets(run_program: RunProgram) -> None:
    run = run_program()
    password = run.named(VALUE, "/compute/snowflake:SNOWFLAKE_PASSWORD")
    user = run.named(VALUE, "/compute/snowflake:SNOWFLAKE_USER")
    generator = run.named(PASSWORD, "/compute/snowflake:SNOWFLAKE_PASSWORD")
    assert (generator.plain("length"), generator.plain("special")) == (32, False)
    assert {k: password.plain(k) for k in ("project_slug", "environment", "path", "key", "adopt")} == {
        "project_slug": "floe-platform",
        "environment": "dev",
        "path": "/compute/snowflake",
        "key": "SNOWFLAKE_PASSWORD",
        "adopt": False,
    }
    assert password.plain("value") == "generated-/compute/snowflake:SNOWFLAKE_PASSWORD"
    assert user.plain("value") == "user-canary"
    for value in (password, user):
        assert {"value", "__provider"} <= value.secret_inputs()
        assert "value" in value.additional_secret_outputs
    assert password.dependencies == [generator.urn]


def test_adopt_reaches_the_provider(run_program: RunProgram) -> None:
    manifest = (
        (ROOT / "manifest.yaml")
        .read_text()
        .replace("SNOWFLAKE_USER: {config: true}", "SNOWFLAKE_USER: {config: true, adopt: true}")
    )
    assert run_program(manifest).named(VALUE, "/compute/snowflake:SNOWFLAKE_USER").plain("adopt") is True


BAD_INPUT = [
    (
        "missing-environment",
        None,
        {},
        r"floe:environment is not set .*pulumi config set --stack dev 'floe:environment' dev",
    ),
    (
        "missing-identity",
        None,
        {"floe:environment": "dev"},
        r"machine identity is not set: run `pulumi config set --secret --stack dev 'floe:operatorClientId'",
    ),
    (
        "missing-k8s-value",
        K8S_MANIFEST,
        {"floe:environment": "dev"},
        r"no value for key SNOWFLAKE_USER of reference snowflake-credentials: run `pulumi config set --secret --path",
    ),
    (
        "missing-writer",
        None,
        {k: v for k, v in default_config("dev").items() if not k.startswith("infisical:")},
        r"the writer identity .* is not set: run `pulumi config set --stack dev 'infisical:clientId' <client-id>`",
    ),
    (
        "missing-infisical-value",
        None,
        {**default_config("dev"), "floe:secretValues": {}},
        r"no value for key SNOWFLAKE_USER of reference snowflake-credentials: run `pulumi config set --secret --path",
    ),
    (
        "protected-stack-without-its-cluster",
        None,
        {**default_config("dev"), "floe:protect": "true"},
        r"protected \(floe:protect: true\) but does not name its cluster.*"
        r"run `pulumi config set --stack dev 'floe:kubeContext' <kubeconfig-context>`",
    ),
    (
        "bad-manifest",
        "plugins: {secrets: {type: vault}}\n",
        default_config("dev"),
        r"manifest\.yaml: 1 problem:.*'vault'",
    ),
    (
        "bad-bool",
        None,
        {**default_config("dev"), "floe:protect": "yes"},
        r"floe:protect must be true or false; found 'yes'",
    ),
]


@pytest.mark.parametrize(("manifest", "config", "match"), [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT])
def test_bad_input_creates_nothing_and_stops_with_one_error(
    run_program: RunProgram, manifest: str | None, config: dict[str, Any], match: str
) -> None:
    from floe_infra.deploy.program import BadInput

    run = run_program(manifest, config=config, expect_error=True)
    assert isinstance(run.error, BadInput)
    assert run.error.code == 32  # the language host's "already shown to the user"
    assert re.search(match, run.error.message, re.DOTALL)
    assert run.registrations == []


def _plan_for(stack: str, config: dict[str, Any], manifest: Path) -> Any:
    values = {k.removeprefix("floe:"): v for k, v in config.items() if k.startswith("floe:")}
    return build_plan(load_manifest(manifest), parse_stack_config(stack, values, "test config"))


@pytest.mark.parametrize(
    ("manifest", "stack", "config"),
    [
        (None, "dev", default_config("dev")),
        (None, "prod", {**default_config("prod"), "floe:protect": "true", "floe:kubeContext": "floe-prod"}),
        (V1ALPHA1, "dev", default_config("dev")),
        (K8S_MANIFEST, "staging", k8s_config("staging")),
        (V1BETA1_AND_ESO, "dev", default_config("dev")),
    ],
    ids=["infisical-dev", "infisical-prod", "v1alpha1-dev", "k8s-staging", "v1beta1-and-eso-installed"],
)
def test_program_registers_exactly_the_plan(
    run_program: RunProgram, tmp_path: Path, manifest: str | None, stack: str, config: dict[str, Any]
) -> None:
    run = run_program(manifest, stack=stack, config=config)
    path = ROOT / "manifest.yaml"
    if manifest is not None:
        path = tmp_path / "plan-manifest.yaml"
        path.write_text(manifest)
    plan = _plan_for(stack, config, path)

    expected_names = {(r.pulumi_type, r.logical_name) for r in plan.resources()}
    expected_names |= {
        (PASSWORD, n) for o in plan.resources() if not isinstance(o, (HelmRelease, ChartCrds)) for n in o.generated()
    }
    charts = [r for r in plan.resources() if isinstance(r, ChartCrds)]
    expected_names |= {(CRD, name) for c in charts for name in _crds_of(c.chart)}
    registered = {(r.type, r.name) for r in run.registrations if not r.type.startswith(("floe:", "pulumi:providers:"))}
    assert registered == expected_names

    by_name = {(r.pulumi_type, r.logical_name): r for r in plan.resources()}
    by_id = {r.id: r for r in plan.resources()}
    for reg in run.registrations:
        desired = by_name.get((reg.type, reg.name))
        if desired is None:
            continue
        assert reg.protect == desired.protect
        # By type and name (a URN's identity): a value and its password share a name.
        deps = {(run.by_urn(u).type, run.by_urn(u).name) for u in reg.dependencies}
        generated = desired.generated() if not isinstance(desired, (HelmRelease, ChartCrds)) else {}
        expected = {(PASSWORD, name) for name in generated}
        for dep in desired.depends_on:
            if dep.startswith("ChartCRDs:"):  # the chart's CRDs, each one
                expected |= {(CRD, name) for name in _crds_of(by_id[dep].chart)}
            else:
                expected.add((by_id[dep].pulumi_type, by_id[dep].logical_name))
        assert deps == expected, reg.name
        if isinstance(desired, ChartCrds):
            rendered = run.chart_rendered(desired.chart)
            assert (rendered["chart"], rendered["version"], rendered["fetch_opts"]["repo"], rendered["values"]) == (
                desired.chart,
                desired.version,
                desired.repo,
                dict(desired.values),
            )
            continue
        if isinstance(desired, InfisicalValue):
            scope = ("project_slug", "environment", "path", "key", "adopt")
            assert {k: reg.plain(k) for k in scope} == {k: getattr(desired, k) for k in scope}
            continue
        if isinstance(desired, HelmRelease):
            assert (reg.plain("chart"), reg.plain("version"), reg.plain("values")) == (
                desired.chart,
                desired.version,
                dict(desired.values),
            )
            continue
        manifest_obj = desired.manifest()
        assert reg.plain("metadata") == manifest_obj["metadata"]
        assert (reg.plain("apiVersion"), reg.plain("kind")) == (manifest_obj["apiVersion"], manifest_obj["kind"])
        if "spec" in manifest_obj:
            assert reg.plain("spec") == manifest_obj["spec"]
        if "stringData" in manifest_obj:
            assert set(reg.plain("stringData")) == set(manifest_obj["stringData"])
            assert reg.plain("type") == manifest_obj["type"]


@pytest.mark.parametrize("protected", [False, True], ids=["dev", "prod-protected"])
def test_the_operator_crds_are_resources_of_their_own_that_outlive_the_release(
    run_program: RunProgram, protected: bool
) -> None:
    """Inside the release, replacing it (a namespace change) or uninstalling it would delete the
    CRDs and with them every InfisicalSecret. The chart is rendered for its CRDs alone: each one is
    retained on delete, kept by Helm, and applied before the release, which installs the rest."""
    stack = "prod" if protected else "dev"
    extra = {"floe:protect": "true", "floe:kubeContext": "floe-prod"} if protected else {}
    run = run_program(stack=stack, config={**default_config(stack), **extra})
    chart = run.named(CHART, "infisical-secrets-operator")
    children = [r for r in run.registrations if r.parent == chart.urn]
    assert sorted((r.type, r.name) for r in children) == [(CRD, name) for name in CHART_CRDS]  # no Deployment
    (cluster,) = run.of_type(CLUSTER)
    for crd in children:
        assert crd.retain_on_delete and crd.protect == protected
        assert crd.provider.rsplit("::", 1)[0] == cluster.urn
        annotations = crd.plain("metadata")["annotations"]
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert annotations["pulumi.com/patchForce"] == "true"
    assert (
        run.named(CRD, "infisicalsecrets.secrets.infisical.com").plain("metadata")["annotations"]["controller-gen"]
        == "v0.18.0"
    )  # the chart's own annotations stay
    release = run.named(RELEASE, "infisical-secrets-operator")
    assert release.plain("values")["installCRDs"] is False
    assert {c.urn for c in children} <= set(release.dependencies)


def test_a_credential_in_plaintext_in_the_stack_file_stops_the_program(run_program: RunProgram, tmp_path: Path) -> None:
    """The engine hands the program plaintext and ciphertext alike: it reads the committed file."""
    from floe_infra.deploy.program import BadInput

    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "Pulumi.dev.yaml").write_text(
        "config:\n  floe:environment: dev\n  floe:operatorClientSecret: client-secret-canary\n"
    )
    run = run_program(expect_error=True)
    assert isinstance(run.error, BadInput) and run.registrations == []
    assert run.error.message == (
        "Pulumi.dev.yaml: floe:operatorClientSecret is in plaintext in a committed file: delete it there and run "
        "`pulumi config set --secret --stack dev 'floe:operatorClientSecret' <value>`"
    )


@pytest.mark.parametrize(
    ("site_url", "warned"),
    [("http://infisical.internal", True), ("http://127.0.0.1:8080", False), ("https://infisical.internal", False)],
    ids=["http-remote", "http-loopback", "https"],
)
def test_an_http_site_url_is_warned_about_unless_loopback(tmp_path: Path, site_url: str, warned: bool) -> None:
    text = (ROOT / "manifest.yaml").read_text().replace("https://infisical.company.com", site_url)
    (tmp_path / "manifest.yaml").write_text(text)
    plan = _plan_for("dev", default_config("dev"), tmp_path / "manifest.yaml")
    expected = [
        f"plugins.secrets.config.site_url is {site_url}: the machine identities' credentials and every "
        "secret would travel unencrypted; use https://"
    ]
    assert list(plan.warnings) == (expected if warned else [])


def test_a_k8s_reference_with_no_keys_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "manifest.yaml").write_text(K8S_MANIFEST + "  empty-one: {}\n")
    plan = _plan_for("dev", k8s_config(), tmp_path / "manifest.yaml")
    assert list(plan.warnings) == [
        "secrets.empty-one declares no keys: its Secret will be empty; add keys: {NAME: {config: true}} or "
        "{generate: {}}"
    ]


def test_a_preview_registers_what_an_update_does(run_program: RunProgram) -> None:
    """In a preview, values not known yet (a generated password) are unknowns; nothing may depend
    on them being known."""
    update = run_program()
    preview = run_program(preview=True)

    def shape(run: ProgramRun) -> set[tuple[str, str, frozenset[str]]]:
        return {(r.type, r.name, frozenset(run.by_urn(u).name for u in r.dependencies)) for r in run.registrations}

    assert shape(preview) == shape(update)
    value = preview.named(VALUE, "/compute/snowflake:SNOWFLAKE_PASSWORD")
    assert value.secret_inputs() >= {"value"}


def test_a_program_the_engine_cancels_exits_quietly() -> None:
    """The language host cancels with SIGINT; the SDK's runner would print a KeyboardInterrupt
    traceback under every failed `up`. The program exits with status 1 instead (e2e: test_faults)."""
    from floe_infra.deploy import program

    program._exit_quietly_when_cancelled()
    handler = signal.getsignal(signal.SIGINT)
    assert callable(handler)
    with pytest.raises(SystemExit) as exited:
        handler(signal.SIGINT, None)
    assert exited.value.code == 1


@pytest.mark.parametrize("kind", ["Namespace", "Secret", "ServiceAccount", "ClusterRoleBinding"])
def test_core_objects_register_exactly_as_the_typed_classes_would(kind: str) -> None:
    """CoreObject stands in for pulumi_kubernetes.core.v1.Namespace/Secret (whose module costs a
    quarter of a second per preview to import): the same type, inputs, secret inputs and secret
    outputs reach the engine."""
    import pulumi
    import pulumi_kubernetes as k8s
    from support import RecordingMonitor

    from floe_infra.deploy.components import CoreObject

    metadata = {"name": "x", "namespace": "floe-jobs", "labels": {"a": "b"}, "annotations": {"c": "d"}}
    data = {"K": pulumi.Output.secret("v"), "L": pulumi.Output.from_input("plain")}
    monitor = RecordingMonitor()
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(monitor.mocks, project="p", stack="s", monitor=monitor)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def register() -> None:
        opts = pulumi.ResourceOptions(protect=True)
        if kind == "Secret":
            k8s.core.v1.Secret("typed", metadata=metadata, type="Opaque", string_data=data, opts=opts)
            CoreObject("ours", kind, metadata, {"type": "Opaque", "stringData": data}, opts)
        elif kind == "ClusterRoleBinding":
            role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"}
            subjects = [{"kind": "ServiceAccount", "name": "r", "namespace": "n"}]
            k8s.rbac.v1.ClusterRoleBinding("typed", metadata=metadata, role_ref=role, subjects=subjects, opts=opts)
            CoreObject(
                "ours", kind, metadata, {"roleRef": role, "subjects": subjects}, opts, "rbac.authorization.k8s.io/v1"
            )
        else:
            getattr(k8s.core.v1, kind)("typed", metadata=metadata, opts=opts)
            CoreObject("ours", kind, metadata, {}, opts)

    register()
    typed, ours = monitor.registrations
    assert (ours.type, ours.inputs, ours.secret_inputs(), sorted(ours.additional_secret_outputs), ours.protect) == (
        typed.type,
        typed.inputs,
        typed.secret_inputs(),
        sorted(typed.additional_secret_outputs),
        typed.protect,
    )
    assert ours.type == typed.type
    if kind == "Secret":
        assert ours.secret_inputs() == {"stringData"}


RUN_AND_LIST_MODULES = """
import json, sys
import pulumi
sys.path.insert(0, "tests")
from support import RecordingMonitor, default_config
from floe_infra.model.settings import SECRET_KEYS

monitor = RecordingMonitor()
pulumi.runtime.set_mocks(monitor.mocks, project="floe", stack="dev", preview=True, monitor=monitor)
pulumi.runtime.settings.SETTINGS.root_directory = "."
values = default_config("dev")
pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()},
                              [k for k in values if k.removeprefix("floe:") in SECRET_KEYS])

@pulumi.runtime.test
def evaluate():
    from floe_infra.deploy.program import run
    return run().outputs

evaluate()
assert any(r.type == "kubernetes:core/v1:Secret" for r in monitor.registrations)
print(sorted(m for m in ("infisical_sdk", "pulumi_kubernetes.core.v1") if m in sys.modules))
"""


def test_a_preview_of_the_program_does_not_import_what_it_does_not_use() -> None:
    """A preview of the example stack (a Secret, Namespaces, InfisicalSecretValues) loads neither the
    Infisical SDK (the dynamic provider's process imports it when it talks to Infisical) nor the
    pulumi_kubernetes core/v1 module (CoreObject): together half a second of every preview."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
