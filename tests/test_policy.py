"""The CrossGuard policies in policy/, called directly with passing and failing resources."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from support import ROOT, RunProgram, default_config

from floe_infra.plan.desired import PASSWORD_TYPE as PASSWORD

sys.path.insert(0, str(ROOT / "policy"))

from floe_policies import (
    chart_violations,
    environment_violations,
    plaintext_keys,
    protection_violations,
    secret_remediation,
    stack_of,
)
from pulumi_policy.secret import Secret, secrets_preserving_proxy

CR = "kubernetes:secrets.infisical.com/v1alpha1:InfisicalSecret"
STATIC = "kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret"
STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"


def cr_spec(env: str) -> dict[str, Any]:
    return {"spec": {"authentication": {"universalAuth": {"secretsScope": {"envSlug": env}}}}}


@pytest.mark.parametrize(
    ("props", "plain"),
    [
        ({"stringData": Secret({"A": "x"})}, []),
        ({"stringData": {"A": Secret("x"), "B": "literal"}}, ["stringData.B"]),
        ({"data": {"A": "eA=="}, "type": "Opaque"}, ["data.A"]),
        ({"type": "Opaque"}, []),
    ],
    ids=["whole-secret", "one-literal", "literal-data", "no-data"],
)
def test_plaintext_keys_as_a_remediation_sees_them(props: dict[str, Any], plain: list[str]) -> None:
    assert plaintext_keys(secrets_preserving_proxy(props)) == plain


def test_remediation_makes_literal_values_secret() -> None:
    args = SimpleNamespace(resource_type="kubernetes:core/v1:Secret", props=secrets_preserving_proxy(
        {"stringData": {"A": "literal"}, "type": "Opaque"}))  # fmt: skip
    fixed = secret_remediation(args)  # type: ignore[arg-type]
    assert fixed is not None and isinstance(fixed["stringData"], Secret)
    assert fixed["stringData"].value == {"A": "literal"} and fixed["type"] == "Opaque"
    args.props = secrets_preserving_proxy({"stringData": Secret({"A": "x"})})
    assert secret_remediation(args) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typ", "props", "stack", "environments", "violations"),
    [
        (CR, cr_spec("prod"), "prod", {}, 0),
        (CR, cr_spec("dev"), "prod", {}, 1),
        (CR, cr_spec("production"), "prod", {"prod": "production"}, 0),
        (STATIC, {"spec": {"sources": [{"environmentSlug": "dev"}, {"environmentSlug": "prod"}]}}, "dev", {}, 1),
        (STORE, {"spec": {"provider": {"infisical": {"secretsScope": {"environmentSlug": "staging"}}}}},
         "staging", {}, 0),
        ("kubernetes:core/v1:Secret", {}, "prod", {}, 0),
    ],
    ids=["same", "other-env", "mapped", "static-one-wrong", "eso-store", "not-a-sync-object"],
)  # fmt: skip
def test_sync_objects_read_their_own_stacks_environment(
    typ: str, props: dict[str, Any], stack: str, environments: dict[str, str], violations: int
) -> None:
    found = environment_violations(typ, props, stack, environments)
    assert len(found) == violations
    if found:
        assert "set floe:environment for this stack" in found[0]


@pytest.mark.parametrize(
    ("typ", "protected", "stack", "violations"),
    [
        ("kubernetes:core/v1:Secret", False, "prod", 1),
        ("kubernetes:core/v1:Secret", True, "prod", 0),
        ("kubernetes:core/v1:Secret", False, "dev", 0),
        ("floe:secrets:Platform", False, "prod", 0),
        ("pulumi:providers:kubernetes", False, "prod", 0),
        ("random:index/randomPassword:RandomPassword", False, "prod", 0),
        ("pulumi-python:dynamic/infisical:SecretValue", False, "prod", 1),
        ("pulumi-python:dynamic/infisical:ClientSecret", False, "prod", 0),
        ("pulumi-python:dynamic/infisical:OperatorLogin", False, "prod", 0),
        ("pulumi-python:dynamic/infisical:MachineIdentity", False, "prod", 1),
    ],
    ids=[
        "prod-unprotected",
        "prod-protected",
        "dev",
        "component",
        "provider",
        "password",
        "its-value",
        "client-secret",
        "login-check",
        "identity",
    ],
)
def test_prod_resources_are_protected(typ: str, protected: bool, stack: str, violations: int) -> None:
    assert len(protection_violations(typ, protected, stack, ["prod"])) == violations


LOGIN = {"metadata": {"name": "x", "annotations": {"floe-infra/login": "universal"}}}


@pytest.mark.parametrize(
    ("typ", "props", "violations"),
    [
        ("kubernetes:core/v1:Secret", LOGIN, 0),
        ("kubernetes:core/v1:ServiceAccount", LOGIN, 0),
        ("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", LOGIN, 0),
        ("kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth", LOGIN, 0),
        ("kubernetes:core/v1:Secret", {"metadata": {"name": "x", "annotations": {"other": "1"}}}, 1),
        ("kubernetes:core/v1:Secret", {"metadata": {"name": "x", "annotations": {"floe-infra/login": "x"}}}, 1),
        ("kubernetes:core/v1:Secret", {"metadata": {"name": "x"}}, 1),
        ("kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret", LOGIN, 1),
        ("kubernetes:helm.sh/v3:Release", LOGIN, 1),
    ],
    ids=[
        "secret",
        "service-account",
        "binding",
        "auth",
        "other-annotation",
        "not-a-method",
        "no-annotation",
        "sync-object",
        "release",
    ],
)
def test_only_the_operators_login_material_may_be_unprotected(
    typ: str,
    props: dict[str, Any],
    violations: int,
) -> None:
    assert len(protection_violations(typ, False, "prod", ["prod"], props)) == violations


@pytest.mark.parametrize(
    ("chart", "version", "ok"),
    [
        ("secrets-operator", "v0.11.5", True),
        ("external-secrets", "1.3.1", True),
        ("secrets-operator", "^0.11.0", False),
        ("secrets-operator", "", False),
        ("secrets-operator", "0.11", False),
        ("secrets-operator", ">=0.11.0", False),
        ("some-other-chart", "", True),
    ],
    ids=["exact", "eso-exact", "caret", "empty", "partial", "range", "not-ours"],
)
def test_operator_chart_is_pinned(chart: str, version: str, ok: bool) -> None:
    found = chart_violations("kubernetes:helm.sh/v3:Release", {"chart": chart, "version": version})
    assert (found == []) is ok


def test_stack_of_urn() -> None:
    assert stack_of("urn:pulumi:prod::floe::floe:secrets:Platform$kubernetes:core/v1:Secret::x") == "prod"


def _shape(
    config: dict[str, Any] | None = None,
    operator: dict[str, Any] | None = None,
    eso: bool = False,
    plugin_type: str = "infisical",
) -> str:
    doc = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    secrets = doc["plugins"]["secrets"]
    secrets["type"] = plugin_type
    if plugin_type == "k8s":
        del secrets["config"]
        return yaml.safe_dump(doc, sort_keys=False)
    secrets["config"].update(config or {})
    secrets["config"]["operator"].update(operator or {})
    if eso:
        secrets["config"]["eso"] = {"install": True, "chart_version": "0.16.2"}
        doc["secrets"]["snowflake-credentials"]["via"] = "eso"
        doc["secrets"]["snowflake-credentials"].pop("auto_reload")
    return yaml.safe_dump(doc, sort_keys=False)


EXTERNAL = {"floe:operatorClientId", "floe:operatorClientSecret"}
SHAPES = {
    "default": (_shape(), set()),
    "v1alpha1": (_shape(operator={"api": "v1alpha1"}), set()),
    "kubernetes-auth": (_shape(operator={"auth": "kubernetes"}), EXTERNAL),
    "managed": (_shape({"identities": "managed"}), EXTERNAL),
    "managed-rotated": (_shape({"identities": "managed"}), EXTERNAL),
    "managed-kubernetes-auth": (_shape({"identities": "managed"}, {"auth": "kubernetes"}), EXTERNAL),
    "eso": (_shape(eso=True), set()),
    "k8s": (_shape(plugin_type="k8s"), EXTERNAL),
}


_IDENTITY_SECRET = "kubernetes:core/v1:Secret::infisical/infisical-machine-identity"
_AUTH_ACCOUNT = "kubernetes:core/v1:ServiceAccount::infisical/infisical-auth"
_ID_SECRET = "kubernetes:core/v1:Secret::infisical/infisical-identity-id"
_AUTH = "kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth::infisical/infisical-universal"
_K8S_AUTH = "kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth::infisical/infisical-kubernetes"
_MANAGED_UNIVERSAL = {
    _IDENTITY_SECRET,
    _AUTH,
    "pulumi-python:dynamic/infisical:ClientSecret::operator",
    "pulumi-python:dynamic/infisical:OperatorLogin::operator",
}
_REVIEWER = {
    "kubernetes:core/v1:ServiceAccount::infisical/infisical-token-reviewer",
    "kubernetes:core/v1:Secret::infisical/infisical-token-reviewer",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding::floe-prod-infisical-infisical-token-reviewer",
}
UNPROTECTED = {
    "default": {_IDENTITY_SECRET, _AUTH},
    "v1alpha1": {_IDENTITY_SECRET},
    "kubernetes-auth": {_AUTH_ACCOUNT, _ID_SECRET, _K8S_AUTH},
    "managed": _MANAGED_UNIVERSAL,
    "managed-rotated": _MANAGED_UNIVERSAL,
    "managed-kubernetes-auth": {_AUTH_ACCOUNT, _ID_SECRET, _K8S_AUTH, *_REVIEWER},
    "eso": {_IDENTITY_SECRET, _AUTH},
    "k8s": set(),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_resource_a_prod_stack_can_make_passes_every_policy(run_program: RunProgram, shape: str) -> None:
    manifest, drop = SHAPES[shape]
    config = {k: v for k, v in default_config("prod").items() if k not in drop}
    config |= {"floe:protect": "true", "floe:kubeContext": "floe-prod"}
    if shape == "kubernetes-auth":
        config["floe:operatorIdentityId"] = "2f1c9a4e-8d7b-4c3a-9e2f-1a2b3c4d5e6f"
    if shape == "k8s":
        config["floe:secretValues"] = {"snowflake-credentials": {"SNOWFLAKE_USER": "u", "SNOWFLAKE_ACCOUNT": "a"}}
        config["floe:passwords"] = "random"  # what `floe secrets upgrade` sets
    if shape == "managed-rotated":
        config["floe:operatorSecretRotation"] = "2026-12"
    run = run_program(manifest, stack="prod", config=config)
    types = {reg.type for reg in run.registrations}
    for reg in run.registrations:
        props = {k: reg.plain(k) for k in reg.inputs}
        assert environment_violations(reg.type, props, "prod", {}) == []
        assert protection_violations(reg.type, reg.protect, "prod", ["prod"], props) == [], reg.urn
        assert chart_violations(reg.type, props) == []
    if shape.startswith("managed"):
        assert {f"pulumi-python:dynamic/infisical:{t}" for t in ("MachineIdentity", "ProjectRole")} <= types
    # What is left unprotected is the operator's login material of the shape's auth method, no more.
    unprotected = {
        reg.urn.rsplit("$", 1)[1]
        for reg in run.registrations
        if not reg.protect and not reg.type.startswith(("pulumi:", "floe:")) and reg.type != PASSWORD
    }
    assert unprotected == UNPROTECTED[shape]
    # A `destroy --skip-preview` (or --exclude-protected) deletes no login material that a protected
    # resource still uses: each one (but the login check, whose delete does nothing) is something a
    # protected resource depends on, so the engine keeps it when it refuses that resource's delete.
    by_urn = {reg.urn: reg for reg in run.registrations}

    def closure(reg: Any) -> set[str]:
        seen: set[str] = set()
        todo = list(reg.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                todo += by_urn[urn].dependencies
        return seen

    used = set().union(*(closure(reg) for reg in run.registrations if reg.protect))
    exposed = {
        reg.urn.rsplit("$", 1)[1]
        for reg in run.registrations
        if not reg.protect
        and reg.urn not in used
        and reg.type != PASSWORD
        and not reg.type.startswith(("pulumi:", "floe:"))
    }
    assert exposed <= {"pulumi-python:dynamic/infisical:OperatorLogin::operator"}, exposed
    if shape == "eso":
        assert STORE in types


def test_an_unprotected_prod_stack_fails(run_program: RunProgram) -> None:
    run = run_program(stack="prod", config=default_config("prod"))
    assert any(protection_violations(r.type, r.protect, "prod", ["prod"]) for r in run.registrations)
