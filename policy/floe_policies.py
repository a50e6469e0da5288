"""floe-infra's CrossGuard policies: the checks as pure functions, and the policies that wrap them.

Each ``*_violations`` function takes what a policy sees of one resource and returns the messages
to report, so tests can call them without an engine. ``__main__.py`` serves them as a pack.
Configuration (``pulumi preview --policy-pack policy --policy-pack-config config.json``):
``environments`` maps a stack to the Infisical environment it must read (default: the stack's
own name), ``protectedStacks`` lists stacks whose resources must be protected (default: prod).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.secret import Secret

SECRET = "kubernetes:core/v1:Secret"
RELEASE = "kubernetes:helm.sh/v3:Release"
PINNED_CHARTS = ("secrets-operator", "external-secrets")
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")

# Where each sync kind names the Infisical environment it reads. Written here again on purpose,
# not imported from floe_infra.plan.vocabulary.read_scope: the pack runs in its own virtualenv
# without floe_infra, and a check that shared the program's reader would miss that reader's bugs.
_ENVIRONMENT_OF: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "kubernetes:secrets.infisical.com/v1alpha1:InfisicalSecret": lambda spec: [
        spec["authentication"]["universalAuth"]["secretsScope"]["envSlug"]
    ],
    "kubernetes:secrets.infisical.com/v1beta1:InfisicalStaticSecret": lambda spec: [
        s["environmentSlug"] for s in spec["sources"]
    ],
    "kubernetes:external-secrets.io/v1:ClusterSecretStore": lambda spec: [
        spec["provider"]["infisical"]["secretsScope"]["environmentSlug"]
    ],
}


def stack_of(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type>::<name>`` → ``<stack>``."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


def _unwrapped(value: Any) -> Any:
    """The dict under pulumi-policy's secret-preserving proxy, where secrets are still ``Secret``s."""
    try:
        return value["__target"]
    except (KeyError, TypeError, IndexError):
        return value


def plaintext_keys(props: Mapping[str, Any]) -> list[str]:
    """Keys of a Secret's ``data``/``stringData`` whose value is not a Pulumi secret."""
    target = _unwrapped(props)
    found = []
    for field in ("data", "stringData"):
        values = target.get(field) if isinstance(target, Mapping) else None
        if values is None or isinstance(values, Secret):
            continue
        found += [f"{field}.{k}" for k, v in _unwrapped(values).items() if not isinstance(v, Secret)]
    return sorted(found)


def secret_remediation(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    """Make every plaintext value of a Secret a Pulumi secret (encrypted in state, masked in output).

    A validation policy cannot tell secret inputs from plain ones (pulumi-policy unwraps them;
    pulumi/pulumi-policy#241); a remediation sees them, so this policy remediates instead.
    """
    if args.resource_type != SECRET or not plaintext_keys(args.props):
        return None
    props = dict(args.props)
    for field in ("data", "stringData"):
        if props.get(field) is not None:
            props[field] = Secret(dict(props[field]))
    return props


def environment_violations(
    resource_type: str, props: Mapping[str, Any], stack: str, environments: Mapping[str, str]
) -> list[str]:
    reader = _ENVIRONMENT_OF.get(resource_type)
    if reader is None:
        return []
    wanted = environments.get(stack, stack)
    kind = resource_type.rsplit(":", 1)[1]
    return [
        f"{kind} reads Infisical environment {env!r}, but stack {stack} must read {wanted!r}: "
        "set floe:environment for this stack"
        for env in reader(props.get("spec") or {})
        if env != wanted
    ]


STATE_ONLY = ("random:index/randomPassword:RandomPassword",)
"""Resources with nothing outside the state to delete: a RandomPassword's value lives on in what
the stack wrote it into (protected there), and protecting the password itself would only refuse
its rotation (a replace)."""


LOGIN_TYPES = ("pulumi-python:dynamic/infisical:ClientSecret", "pulumi-python:dynamic/infisical:OperatorLogin")
LOGIN_KINDS = (
    "kubernetes:core/v1:Secret",
    "kubernetes:core/v1:ServiceAccount",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    "kubernetes:secrets.infisical.com/v1beta1:InfisicalAuth",
)
LOGIN_ANNOTATION = "floe-infra/login"
"""The operator's login material: a managed identity's client secret (and the check that the
operator uses it), and the Kubernetes objects the program annotates with ``floe-infra/login`` (the
identity Secret, the auth ServiceAccount, the token reviewer, v1beta1's InfisicalAuth: only these
kinds). The stack makes each again from the
identity, which stays protected, and a change of auth method deletes the old method's, which
protect would refuse. Written here again on purpose (see ``_ENVIRONMENT_OF``)."""


def _is_login(resource_type: str, props: Mapping[str, Any]) -> bool:
    if resource_type in LOGIN_TYPES:
        return True
    if resource_type not in LOGIN_KINDS:
        return False
    annotations = (_unwrapped(props).get("metadata") or {}).get("annotations") or {}
    return _unwrapped(annotations).get(LOGIN_ANNOTATION) in ("universal", "kubernetes")


def protection_violations(
    resource_type: str,
    protected: bool,
    stack: str,
    protected_stacks: Sequence[str],
    props: Mapping[str, Any] | None = None,
) -> list[str]:
    if stack not in protected_stacks or protected:
        return []
    if resource_type.startswith(("pulumi:", "floe:")) or resource_type in STATE_ONLY:
        return []  # the stack, providers and components; passwords
    if _is_login(resource_type, props or {}):
        return []
    return [f"{resource_type} in stack {stack} is not protected: set floe:protect true for this stack"]


def chart_violations(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type != RELEASE or props.get("chart") not in PINNED_CHARTS:
        return []
    version = str(props.get("version") or "")
    if _EXACT_VERSION.match(version):
        return []
    return [
        f"chart {props.get('chart')} is not pinned (version {version!r}): set an exact version such as v0.11.5, "
        "not a range or nothing"
    ]


def _report(violations: list[str], report: ReportViolation) -> None:
    for message in violations:
        report(message, None)


def _environment(args: ResourceValidationArgs, report: ReportViolation) -> None:
    environments = args.get_config().get("environments") or {}
    _report(environment_violations(args.resource_type, args.props, stack_of(args.urn), environments), report)


def _protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    stacks = args.get_config().get("protectedStacks") or ["prod"]
    _report(
        protection_violations(args.resource_type, args.opts.protect, stack_of(args.urn), stacks, args.props), report
    )


def _chart(args: ResourceValidationArgs, report: ReportViolation) -> None:
    _report(chart_violations(args.resource_type, args.props), report)


POLICIES = [
    ResourceValidationPolicy(
        name="secret-values-are-secrets",
        description="No Kubernetes Secret carries a literal (non-secret) value: plaintext values are made secrets.",
        # pulumi-policy runs a plain (non-awaitable) result too; its type hint only names awaitables.
        remediate=secret_remediation,  # type: ignore[arg-type]
        enforcement_level=EnforcementLevel.REMEDIATE,
    ),
    ResourceValidationPolicy(
        name="infisical-environment-matches-stack",
        description="Every InfisicalSecret, InfisicalStaticSecret and ESO store reads its own stack's environment.",
        validate=_environment,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"environments": {"type": "object", "additionalProperties": {"type": "string"}}}
        ),
    ),
    ResourceValidationPolicy(
        name="prod-resources-protected",
        description="Every resource of a production stack is protected from deletion (passwords, which live only "
        "in the state, and the operator's login material, which the stack makes again, excepted).",
        validate=_protection,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(
            properties={"protectedStacks": {"type": "array", "items": {"type": "string"}}}
        ),
    ),
    ResourceValidationPolicy(
        name="operator-chart-pinned",
        description="The Infisical operator (and ESO) Helm charts are pinned to an exact version.",
        validate=_chart,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
