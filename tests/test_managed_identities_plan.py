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
from pulumi.dynamic.dynamic import serialize_provider
from support import ROOT, RunProgram, default_config, with_operator_api

from floe_infra import ManifestError, StackSettings, build_plan, load_manifest
from floe_infra.errors import StackConfigError
from floe_infra.model.settings import parse_stack_config
from floe_infra.plan.desired import ManagedIdentity
from floe_infra.plan.planner import deploy_config_problems
from floe_infra.plan.render import table

IDENTITY = "pulumi-python:dynamic/infisical:MachineIdentity"
CLIENT_SECRET = "pulumi-python:dynamic/infisical:ClientSecret"
LOGIN = "pulumi-python:dynamic/infisical:OperatorLogin"
ROLE = "pulumi-python:dynamic/infisical:ProjectRole"
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


@pytest.mark.parametrize(
    ("api", "rotation", "secret_name", "key"),
    [
        ("v1beta1", None, "infisical-machine-identity", "clientSecret"),
        # in place: a protected stack may update the Secret; the operator takes it at its next login
        ("v1beta1", "2026-12", "infisical-machine-identity", "clientSecret"),
        ("v1alpha1", "2026-12", "infisical-machine-identity-2026-12", "clientSecret"),
    ],  # a new spec: a login
    ids=["v1beta1", "v1beta1-rotated", "v1alpha1-rotated"],
)
def test_the_plan_makes_a_scoped_identity_and_fills_the_identity_secret_from_it(
    tmp_path: Path, api: str, rotation: str | None, secret_name: str, key: str
) -> None:
    plan = plan_of(tmp_path, managed_manifest(api), operator_secret_rotation=rotation)
    managed = plan.operator.managed_identity
    assert isinstance(managed, ManagedIdentity)
    assert (managed.name, managed.project_slug, managed.role, managed.rotation, managed.role_slug) == (
        "floe-floe-platform-dev-operator",
        "floe-platform",
        "scoped",
        rotation or "",
        "floe-dev-reader",
    )
    assert (managed.environment, managed.paths) == ("dev", ("/catalog/polaris", "/compute/snowflake"))
    assert managed.access() == {"ttl": 600, "max_ttl": 3600, "trusted_ips": []}
    identity = plan.operator.identity
    assert identity.name == secret_name and managed.id in identity.depends_on
    assert {k: s.identity_output for k, s in identity.secret_data.items()} == {
        "clientId": "clientId",
        key: "clientSecret",
    }
    if api == "v1beta1":
        ref = plan.operator.auth.content["spec"]["universal"]["clientSecretRef"]
        assert (ref["name"], ref["key"]) == (secret_name, key)
    shown = table(plan)
    assert all(t in shown for t in (IDENTITY, CLIENT_SECRET, LOGIN, ROLE))
    assert "<clientSecret of the managed identity>" in str(identity.manifest())


def test_a_rotation_of_a_protected_v1alpha1_stack_renames_only_unprotected_login_material(tmp_path: Path) -> None:
    """v1alpha1 logs in again only when its spec changes, so a rotation renames the identity Secret:
    a create and a delete of login material, which protect does not refuse; what syncs stays protected."""
    plan = plan_of(
        tmp_path, managed_manifest("v1alpha1"), operator_secret_rotation="r1", protect=True, kube_context="floe-prod"
    )
    assert plan.operator is not None and plan.operator.identity is not None
    assert plan.operator.identity.name == "infisical-machine-identity-r1"
    assert plan.operator.identity.protect is False
    assert plan.operator.identity.annotations == {"floe-infra/login": "universal"}
    synced = [o for o in plan.kube_objects() if o.kind == "InfisicalSecret"]
    assert synced and all(o.protect for o in synced)


@pytest.mark.parametrize(
    ("identity", "match"),
    [
        ({"role": "admin"}, r"identity\.role: Input should be 'scoped' or 'viewer'"),
        ({"token_ttl": "5s"}, r"token_ttl is 5s: at least 15s"),
        ({"token_ttl": "2h", "token_max_ttl": "1h"}, r"token_max_ttl \(1h\) is shorter than token_ttl \(2h\)"),
        ({"trusted_ips": ["10.0.0.0/33"]}, r"'10\.0\.0\.0/33' is not an IP address or CIDR range"),
        ({"audience": "api"}, r"identity\.audience is for Kubernetes Auth: set operator\.auth: kubernetes"),
    ],
    ids=["role", "short-ttl", "max-below-ttl", "bad-cidr", "audience-without-kubernetes"],
)
def test_identity_settings_are_checked_with_the_field_and_the_fix(
    tmp_path: Path, identity: dict[str, Any], match: str
) -> None:
    with pytest.raises(ManifestError, match=match):
        plan_of(tmp_path, managed_manifest(identity=identity))


def test_identity_settings_without_managed_identities_are_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(managed_manifest(identity={"token_ttl": "5m"}))
    doc["plugins"]["secrets"]["config"]["identities"] = "external"
    with pytest.raises(ManifestError, match=r"identity: sets the identity the stack makes: set identities: managed"):
        plan_of(tmp_path, yaml.safe_dump(doc))


def test_the_whole_project_viewer_is_an_opt_in_the_plan_warns_about(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, managed_manifest(identity={"role": "viewer"}))
    assert plan.operator.managed_identity.role == "viewer"
    assert any("identity.role: viewer" in w and "every environment" in w for w in plan.warnings), plan.warnings
    assert ROLE not in table(plan)


CONFIG_PROBLEMS = [
    (
        "client-credentials-too",
        {"operator_credentials": frozenset({"operatorClientSecret"})},
        r"it sets floe:operatorClientSecret, but with identities: managed the stack makes the operator's identity "
        r"and client secret itself: run `pulumi config rm --stack dev 'floe:operatorClientSecret'`",
    ),
    (
        "no-identity-for-pulumi",
        {"writer_credentials_set": False},
        r"with identities: managed the identity Pulumi runs with makes the operator's identity, and it is not set: "
        r"run `pulumi config set --stack dev 'infisical:clientId' <client-id>`.*it needs an organization role that may "
        r"create identities and a project role that may add members",
    ),
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
    assert token.annotations == {
        "kubernetes.io/service-account.name": "infisical-token-reviewer",
        "floe-infra/login": "kubernetes",
    }
    binding = objects[("ClusterRoleBinding", None, "floe-dev-infisical-infisical-token-reviewer")]
    assert binding.content["roleRef"]["name"] == "system:auth-delegator"
    assert binding.content["subjects"] == [
        {"kind": "ServiceAccount", "name": "infisical-token-reviewer", "namespace": "infisical"}
    ]
    managed = plan.operator.managed_identity
    assert managed.kubernetes is not None and (managed.kubernetes.namespace, managed.kubernetes.service_account) == (
        "infisical",
        "infisical-auth",
    )
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
@pytest.mark.parametrize("protect", [False, True])
def test_the_program_registers_the_role_the_identity_its_client_secret_and_the_login_wait(
    run_program: RunProgram, api: str, protect: bool
) -> None:
    extra = {"floe:protect": "true", "floe:kubeContext": "floe-prod"} if protect else {}
    run = run_program(managed_manifest(api), config=managed_config(**extra))
    (role,) = run.of_type(ROLE)
    (identity,) = run.of_type(IDENTITY)
    (client_secret,) = run.of_type(CLIENT_SECRET)
    (login,) = run.of_type(LOGIN)
    assert (role.plain("slug"), role.plain("environment"), role.plain("paths")) == (
        "floe-dev-reader",
        "dev",
        ["/catalog/polaris", "/compute/snowflake"],
    )
    assert identity.plain("name") == "floe-floe-platform-dev-operator"
    assert identity.plain("access") == {"ttl": 600, "max_ttl": 3600, "trusted_ips": []}
    assert identity.provider == "" and client_secret.provider == ""  # not the cluster's provider
    assert "client_secret" in client_secret.additional_secret_outputs
    users = {
        r.urn for r in run.registrations if r.type.endswith(("InfisicalAuth", "InfisicalSecret", "InfisicalConnection"))
    }
    assert users and users <= set(login.dependencies)
    assert all(r.protect is protect for r in (role, identity))
    assert not client_secret.protect and not login.protect  # login material: a switch of method deletes it
    # The operator takes a new client secret at its next login, at 70% of the token's TTL: the wait covers it.
    assert login.plain("wait") == 300 + 600
    name = "infisical-machine-identity"
    secret = run.named(SECRET, f"infisical/{name}")
    assert client_secret.urn in secret.dependencies and "stringData" in secret.secret_inputs()


PICKLED = [  # every dynamic provider a state holds, and the module path it is pickled under
    ("floe_infra.identities", "MachineIdentityProvider"),
    ("floe_infra.identities", "ProjectRoleProvider"),
    ("floe_infra.identities", "ClientSecretProvider"),
    ("floe_infra.identities", "OperatorLoginProvider"),
    ("floe_infra.secret_value", "InfisicalSecretValueProvider"),
    ("floe_infra.password", "GeneratedPasswordProvider"),
]


@pytest.mark.parametrize(("module", "name"), PICKLED, ids=[n for _, n in PICKLED])
def test_every_pickled_provider_configured_carries_no_credential_and_keeps_its_path(module: str, name: str) -> None:
    """Configured as the engine configures it (the writer's credentials from stack config), then
    pickled as Pulumi pickles it into the state: no credential in the bytes, and the class loads
    from the path existing states name."""
    import importlib

    from pulumi.dynamic import ConfigureRequest
    from pulumi.dynamic.config import Config as DynamicConfig

    cls = getattr(importlib.import_module(module), name)
    provider = cls() if name == "GeneratedPasswordProvider" else cls(site_url="https://infisical.example.com")
    raw = {
        "infisical:siteUrl": "https://infisical.example.com",
        "infisical:clientId": "writer-id-canary",
        "infisical:clientSecret": "writer-secret-canary",
    }
    provider.configure(ConfigureRequest(DynamicConfig(raw, "floe")))
    if name != "GeneratedPasswordProvider":
        assert provider._credentials().client_secret == "writer-secret-canary"  # configured: it holds them
    pickled = base64.b64decode(serialize_provider(provider))
    assert module.encode() in pickled and b"floe_infra.deploy" not in pickled
    assert type(pickle.loads(pickled)) is cls
    assert b"writer-secret-canary" not in pickled and b"writer-id-canary" not in pickled
