"""operator.auth: kubernetes: the operator logs in with a short-lived token of a ServiceAccount the
program creates; no client secret exists in the cluster. Plan, validation and program under mocks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, RunProgram, default_config, with_operator_api
from test_plan import crd_validator

from floe_infra import ManifestError, StackSettings, build_plan, load_manifest
from floe_infra.errors import StackConfigError
from floe_infra.model.settings import parse_stack_config
from floe_infra.plan.planner import deploy_config_problems

IDENTITY = "6f1c2a0e-8d4b-4c1e-9a7f-2b3c4d5e6f70"
SECRET = "kubernetes:core/v1:Secret"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"


def kubernetes_manifest(api: str = "v1beta1", **operator: Any) -> str:
    doc = yaml.safe_load(with_operator_api((ROOT / "manifest.yaml").read_text(), api))
    doc["plugins"]["secrets"]["config"]["operator"].update({"auth": "kubernetes", **operator})
    return yaml.safe_dump(doc, sort_keys=False)


def plan_of(tmp_path: Path, manifest: str, **settings: Any) -> Any:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    values: dict[str, Any] = {"stack": "dev", "environment": "dev", "operator_identity_id": IDENTITY, **settings}
    return build_plan(load_manifest(path), StackSettings(**values))


def kubernetes_config(stack: str = "dev") -> dict[str, Any]:
    config = {k: v for k, v in default_config(stack).items() if not k.startswith("floe:operatorClient")}
    return {**config, "floe:operatorIdentityId": IDENTITY}


def test_v1beta1_auth_names_the_service_account_and_a_secret_holding_only_the_identity_id(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, kubernetes_manifest())
    objects = {(o.kind, o.namespace, o.name): o for o in plan.kube_objects()}
    assert ("Secret", "infisical", "infisical-machine-identity") not in objects
    account = objects[("ServiceAccount", "infisical", "infisical-auth")]
    assert account.content == {}
    holder = objects[("Secret", "infisical", "infisical-identity-id")]
    assert [(k, s.config_key) for k, s in holder.secret_data.items()] == [("identityId", "operatorIdentityId")]
    auth = objects[("InfisicalAuth", "infisical", "infisical-kubernetes")]
    assert auth.content["spec"] == {
        "method": "kubernetes",
        "infisicalConnectionRef": {"name": "infisical", "namespace": "infisical"},
        "kubernetes": {
            "identityIdRef": {"name": "infisical-identity-id", "namespace": "infisical", "key": "identityId"},
            "serviceAccountRef": {"name": "infisical-auth", "namespace": "infisical"},
        },
    }
    assert {account.id, holder.id} <= set(auth.depends_on)
    for static in (o for o in plan.kube_objects() if o.kind == "InfisicalStaticSecret"):
        assert static.content["spec"]["infisicalAuthRef"] == {"name": "infisical-kubernetes", "namespace": "infisical"}
    errors = [e.message for e in crd_validator("InfisicalAuth").iter_errors(auth.manifest())]
    assert errors == []


@pytest.mark.parametrize(
    ("service_account", "retained"),
    [(None, False), ("floe-operator", True)],
    ids=["the-stacks-own", "named-in-the-manifest"],
)
def test_the_auth_service_account_is_login_material_kept_on_delete_when_the_manifest_names_it(
    tmp_path: Path,
    service_account: str | None,
    retained: bool,
) -> None:
    """Unprotected (a switch of method deletes it); but one the manifest names may be someone
    else's, which the create took over: a switch leaves it in the cluster."""
    plan = plan_of(
        tmp_path,
        kubernetes_manifest("v1beta1", service_account=service_account),
        protect=True,
        kube_context="floe-prod",
    )
    account = next(o for o in plan.kube_objects() if o.kind == "ServiceAccount")
    assert (account.protect, account.retain_on_delete) == (False, retained)
    assert account.annotations == {"floe-infra/login": "kubernetes"}


def test_v1alpha1_secrets_log_in_with_a_token_of_the_service_account(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, kubernetes_manifest("v1alpha1", service_account="floe-operator"))
    assert [o for o in plan.kube_objects() if o.kind == "Secret" and o.namespace == "infisical"] == []
    account = next(o for o in plan.kube_objects() if o.kind == "ServiceAccount")
    assert (account.namespace, account.name) == ("infisical", "floe-operator")
    validator = crd_validator("InfisicalSecret")
    secrets = [o for o in plan.kube_objects() if o.kind == "InfisicalSecret"]
    assert len(secrets) == 2
    paths = {"snowflake-credentials": "/compute/snowflake", "catalog-credentials": "/catalog/polaris"}
    for cr in secrets:
        assert cr.content["spec"]["authentication"] == {
            "kubernetesAuth": {
                "identityId": IDENTITY,
                "serviceAccountRef": {"name": "floe-operator", "namespace": "infisical"},
                "autoCreateServiceAccountToken": True,
                "secretsScope": {"projectSlug": "floe-platform", "envSlug": "dev", "secretsPath": paths[cr.name]},
            }
        }
        assert account.id in cr.depends_on
        assert [e.message for e in validator.iter_errors(cr.manifest())] == []


CONFIG_PROBLEMS = [
    (
        "identity-id-missing",
        {"operator_identity_id": None},
        r"operator\.auth: kubernetes\) but the identity it logs in as is not set: run "
        r"`pulumi config set --stack dev 'floe:operatorIdentityId' <identity-id>`",
    ),
    (
        "client-credentials-too",
        {"operator_credentials": frozenset({"operatorClientId", "operatorClientSecret"})},
        r"it sets floe:operatorClientId and floe:operatorClientSecret, but with operator\.auth: kubernetes no client "
        r"secret is kept in the cluster: run `pulumi config rm --stack dev 'floe:operatorClientId'` and "
        r"`pulumi config rm --stack dev 'floe:operatorClientSecret'`",
    ),
]


@pytest.mark.parametrize(("settings", "match"), [c[1:] for c in CONFIG_PROBLEMS], ids=[c[0] for c in CONFIG_PROBLEMS])
def test_stack_config_that_does_not_fit_kubernetes_auth_names_the_key_and_the_command(
    tmp_path: Path, settings: dict[str, Any], match: str
) -> None:
    (problem,) = deploy_config_problems(plan_of(tmp_path, kubernetes_manifest(), **settings))
    assert re.search(match, problem), problem


def test_an_identity_id_that_is_not_one_is_refused_with_the_key() -> None:
    with pytest.raises(
        StackConfigError,
        match=r"floe:operatorIdentityId: 'my-identity' is not a machine identity "
        r"id: copy the identity's ID \(a UUID\) from Infisical",
    ):
        parse_stack_config("dev", {"environment": "dev", "operatorIdentityId": "my-identity"}, "Pulumi.dev.yaml")


MANIFEST_PROBLEMS = [
    (
        "service-account-without-kubernetes-auth",
        lambda: with_operator_api((ROOT / "manifest.yaml").read_text(), "v1beta1").replace(
            "      operator:\n", "      operator:\n        service_account: floe-operator\n"
        ),
        r"service_account is for auth: kubernetes; set operator\.auth: kubernetes or remove it",
    ),
    (
        "eso-with-kubernetes-auth",
        lambda: kubernetes_manifest().replace("    auto_reload: true\n", "    auto_reload: true\n    via: eso\n"),
        r"secrets\.snowflake-credentials\.via: via: eso logs in with the universal-auth identity Secret",
    ),
]


@pytest.mark.parametrize(
    ("manifest", "match"), [c[1:] for c in MANIFEST_PROBLEMS], ids=[c[0] for c in MANIFEST_PROBLEMS]
)
def test_manifest_that_does_not_fit_kubernetes_auth_names_the_field(tmp_path: Path, manifest: Any, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        plan_of(tmp_path, manifest())


@pytest.mark.parametrize("api", ["v1alpha1", "v1beta1"])
def test_the_program_creates_the_service_account_and_no_client_secret(run_program: RunProgram, api: str) -> None:
    run = run_program(kubernetes_manifest(api), config=kubernetes_config())
    accounts = run.of_type(ACCOUNT)
    assert [(a.name, a.plain("metadata")["namespace"]) for a in accounts] == [("infisical/infisical-auth", "infisical")]
    secrets = {r.name: r for r in run.of_type(SECRET)}
    assert "infisical/infisical-machine-identity" not in secrets
    for secret in secrets.values():
        assert not {"clientId", "clientSecret"} & set(secret.plain("stringData") or {})
    if api == "v1beta1":
        holder = secrets["infisical/infisical-identity-id"]
        assert holder.plain("stringData") == {"identityId": IDENTITY}


def test_the_program_refuses_kubernetes_auth_with_client_credentials_before_creating_anything(
    run_program: RunProgram,
) -> None:
    from floe_infra.deploy.program import BadInput

    config = {**kubernetes_config(), "floe:operatorClientId": "id", "floe:operatorClientSecret": "secret"}
    run = run_program(kubernetes_manifest(), config=config, expect_error=True)
    assert isinstance(run.error, BadInput)
    assert "pulumi config rm --stack dev 'floe:operatorClientSecret'" in run.error.message
    assert run.registrations == []
