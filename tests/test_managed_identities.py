"""identities: managed: the plan, its validation, and the program under mocks. The providers' talk
with Infisical is checked against the real server (tests/e2e/test_managed_identities.py)."""

from __future__ import annotations

import base64
import pickle
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, RunProgram, default_config, with_operator_api
from pulumi.dynamic.dynamic import serialize_provider

from floe_infra import ManifestError, StackSettings, build_plan, load_manifest
from floe_infra.errors import StackConfigError
from floe_infra.model.settings import parse_stack_config
from floe_infra.plan.desired import ManagedIdentity
from floe_infra.plan.planner import deploy_config_problems
from floe_infra.plan.render import table

IDENTITY = "pulumi-python:dynamic/infisical:MachineIdentity"
CLIENT_SECRET = "pulumi-python:dynamic/infisical:ClientSecret"
LOGIN = "pulumi-python:dynamic/infisical:OperatorLogin"
SECRET = "kubernetes:core/v1:Secret"


def managed_manifest(api: str = "v1beta1", **config: Any) -> str:
    doc = yaml.safe_load(with_operator_api((ROOT / "manifest.yaml").read_text(), api))
    doc["plugins"]["secrets"]["config"].update({"identities": "managed", **config})
    return yaml.safe_dump(doc, sort_keys=False)


def plan_of(tmp_path: Path, manifest: str, **settings: Any) -> Any:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    values: dict[str, Any] = {"stack": "dev", "environment": "dev", "writer_credentials_set": True, **settings}
    return build_plan(load_manifest(path), StackSettings(**values))


def managed_config(stack: str = "dev", **extra: Any) -> dict[str, Any]:
    config = {k: v for k, v in default_config(stack).items() if not k.startswith("floe:operatorClient")}
    return {**config, **extra}


@pytest.mark.parametrize(("rotation", "secret_name"), [(None, "infisical-machine-identity"),
                                                       ("2026-12", "infisical-machine-identity-2026-12")])
def test_the_plan_makes_a_viewer_identity_and_fills_the_identity_secret_from_it(
    tmp_path: Path, rotation: str | None, secret_name: str
) -> None:
    plan = plan_of(tmp_path, managed_manifest(), operator_secret_rotation=rotation)
    managed = plan.operator.managed_identity
    assert isinstance(managed, ManagedIdentity)
    assert (managed.name, managed.project_slug, managed.role, managed.rotation) == (
        "floe-floe-platform-dev-operator", "floe-platform", "viewer", rotation or "")
    identity = plan.operator.identity
    assert identity.name == secret_name and managed.id in identity.depends_on
    assert {k: s.identity_output for k, s in identity.secret_data.items()} == {
        "clientId": "clientId", "clientSecret": "clientSecret"}
    auth = plan.operator.auth
    assert auth.content["spec"]["universal"]["clientSecretRef"]["name"] == secret_name
    shown = table(plan)
    assert all(t in shown for t in (IDENTITY, CLIENT_SECRET, LOGIN))
    assert "<clientSecret of the managed identity>" in str(identity.manifest())


CONFIG_PROBLEMS = [
    ("client-credentials-too", {"operator_credentials": frozenset({"operatorClientSecret"})},
     r"it sets floe:operatorClientSecret, but with identities: managed the stack makes the operator's identity "
     r"and client secret itself: run `pulumi config rm --stack dev 'floe:operatorClientSecret'`"),
    ("no-identity-for-pulumi", {"writer_credentials_set": False},
     r"with identities: managed the identity Pulumi runs with makes the operator's identity, and it is not set: "
     r"run `pulumi config set --stack dev 'infisical:clientId' <client-id>`.*it needs an organization role that may "
     r"create identities and a project role that may add members"),
]


@pytest.mark.parametrize(("settings", "match"), [c[1:] for c in CONFIG_PROBLEMS], ids=[c[0] for c in CONFIG_PROBLEMS])
def test_stack_config_that_does_not_fit_managed_identities_names_the_key_and_the_command(
    tmp_path: Path, settings: dict[str, Any], match: str
) -> None:
    problems = deploy_config_problems(plan_of(tmp_path, managed_manifest(), **settings))
    assert any(re.search(match, p) for p in problems), problems


def test_managed_kubernetes_auth_makes_the_token_reviewer_and_names_the_identity_by_its_output(
    tmp_path: Path,
) -> None:
    manifest = managed_manifest().replace("      operator:\n", "      operator:\n        auth: kubernetes\n")
    plan = plan_of(tmp_path, manifest, kube_context="floe-local")
    objects = {(o.kind, o.namespace, o.name): o for o in plan.kube_objects()}
    token = objects[("Secret", "infisical", "infisical-token-reviewer")]
    assert token.content == {"type": "kubernetes.io/service-account-token"}
    assert token.annotations == {"kubernetes.io/service-account.name": "infisical-token-reviewer"}
    binding = objects[("ClusterRoleBinding", None, "floe-dev-infisical-infisical-token-reviewer")]
    assert binding.content["roleRef"]["name"] == "system:auth-delegator"
    assert binding.content["subjects"] == [
        {"kind": "ServiceAccount", "name": "infisical-token-reviewer", "namespace": "infisical"}]
    managed = plan.operator.managed_identity
    assert managed.kubernetes is not None and (managed.kubernetes.namespace, managed.kubernetes.service_account) == (
        "infisical", "infisical-auth")
    assert {token.id, binding.id} <= set(managed.depends_on)
    holder = objects[("Secret", "infisical", "infisical-identity-id")]
    assert holder.secret_data["identityId"].identity_output == "identityId" and managed.id in holder.depends_on
    assert ("Secret", "infisical", "infisical-machine-identity") not in objects
    assert CLIENT_SECRET not in table(plan)


def test_managed_kubernetes_auth_with_v1alpha1_is_refused_with_the_fix(tmp_path: Path) -> None:
    manifest = managed_manifest("v1alpha1").replace("      operator:\n", "      operator:\n        auth: kubernetes\n")
    with pytest.raises(ManifestError, match=r"only v1beta1 reads: remove operator\.api: v1alpha1"):
        plan_of(tmp_path, manifest)


def test_a_rotation_mark_that_cannot_end_a_secret_name_is_refused_with_the_key() -> None:
    with pytest.raises(StackConfigError, match=r"floe:operatorSecretRotation: 'Dec 2026' is not a rotation mark"):
        parse_stack_config("dev", {"environment": "dev", "operatorSecretRotation": "Dec 2026"}, "Pulumi.dev.yaml")


@pytest.mark.parametrize("api", ["v1alpha1", "v1beta1"])
def test_the_program_registers_the_identity_its_client_secret_and_the_login_wait(
    run_program: RunProgram, api: str
) -> None:
    run = run_program(managed_manifest(api), config=managed_config())
    (identity,) = run.of_type(IDENTITY)
    (client_secret,) = run.of_type(CLIENT_SECRET)
    (login,) = run.of_type(LOGIN)
    assert identity.plain("name") == "floe-floe-platform-dev-operator" and identity.plain("role") == "viewer"
    assert identity.provider == "" and client_secret.provider == ""  # not the cluster's provider
    assert "client_secret" in client_secret.additional_secret_outputs
    users = {r.urn for r in run.registrations if r.type.endswith(("InfisicalAuth", "InfisicalSecret"))}
    assert users and users <= set(login.dependencies)
    secret = run.named(SECRET, "infisical/infisical-machine-identity")
    assert client_secret.urn in secret.dependencies and "stringData" in secret.secret_inputs()


def test_the_pickled_providers_carry_no_credentials_and_keep_their_path() -> None:
    import floe_infra.identities
    from floe_infra.deploy.identities import ClientSecretProvider

    provider = ClientSecretProvider("https://infisical.example.com")
    pickled = base64.b64decode(serialize_provider(provider))
    assert b"floe_infra.identities" in pickled and b"floe_infra.deploy" not in pickled
    assert type(pickle.loads(pickled)) is floe_infra.identities.ClientSecretProvider
    assert b"writer-secret-canary" not in pickled and b"clientSecret" not in pickled
