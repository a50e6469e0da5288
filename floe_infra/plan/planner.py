"""Pure functions: (manifest, stack settings) → StackPlan.

No Pulumi, no network, no secret values: the same plan feeds ``pulumi preview``/``up`` (through
the components) and ``floe secrets plan``, so the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import urlsplit

from ..errors import StackConfigError
from ..model import names
from ..model.manifest import InfisicalSettings, LoadedManifest, Reference
from ..model.settings import NAMESPACE, WRITER_ENV, WRITER_NAMESPACE, StackSettings, config_path, set_command
from .desired import (
    MANAGED_BY,
    STACK_LABEL,
    InfisicalValue,
    KubeObject,
    OperatorPlan,
    ReferencePlan,
    StackPlan,
    namespace_object,
)
from .operator import operator_plan
from .references import infisical_reference, k8s_reference, shared_objects, written_values
from .vocabulary import ESO_STORE_CHECK_MINUTES, POLLING_KINDS

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_plan(manifest: LoadedManifest, settings: StackSettings) -> StackPlan:
    """The desired state of one stack; raises ManifestError for rules that span references."""
    references = manifest.references(settings.jobs_namespace)
    plugin = manifest.model.plugins.secrets
    labels: Mapping[str, str] = MappingProxyType({**MANAGED_BY, STACK_LABEL: settings.stack})  # shared: read-only
    if plugin.type == "infisical":
        assert plugin.config is not None  # the model requires it for this type
        if plugin.config.operator.auth == "kubernetes":
            for ref in references:
                if ref.via == "eso":
                    raise manifest.error(
                        (*ref.declared_at, "via"),
                        "via: eso logs in with the universal-auth identity Secret, which operator.auth: kubernetes "
                        "does not create: remove via: eso (the operator syncs it) or set operator.auth: universal",
                    )
        if plugin.config.operator.sources == "prefix":
            for ref in references:
                if ref.via == "operator" and not ref.keys:
                    raise manifest.error(
                        ref.declared_at,
                        f"reference {ref.name!r} declares no keys, and with operator.sources: prefix a Secret holds "
                        f"exactly its declared keys: declare them under secrets.{ref.name}.keys (KEY: {{}} for one "
                        "set by hand), or remove operator.sources: prefix",
                    )
        paths = tuple(sorted({r.path for r in references}))
        operator: OperatorPlan | None = operator_plan(plugin.config, settings, labels, paths)
        groups = shared_objects(plugin.config, references)
        values = {r.name: written_values(r, plugin.config, settings) for r in references}
        plans = tuple(
            infisical_reference(r, plugin.config, settings, labels, operator, values, groups.get(r.name, (r,)))
            for r in references
        )
    elif plugin.type == "k8s":
        operator = None
        for ref in references:
            if ref.via == "eso":
                raise manifest.error(
                    (*ref.declared_at, "via"),
                    "via: eso reads Infisical through External Secrets Operator: it needs type infisical; "
                    "remove via for type k8s",
                )
        plans = tuple(k8s_reference(r, settings, labels) for r in references)
    else:
        raise manifest.error(
            ("plugins", "secrets", "type"),
            f"{plugin.type!r} is a plugin of the floe CLI (validate, list, status); this Pulumi program deploys "
            "types infisical and k8s only",
        )
    _check_rotations(settings, references)
    _check_secret_targets(manifest, operator, plans)
    _check_value_targets(manifest, plans)
    warnings = _warnings(manifest, references)
    budget = read_budget_problem(plugin.config, plans) if operator is not None and plugin.config else None
    warnings += [budget] if budget else []
    namespaces = _namespaces(settings, labels, operator, plans)
    return StackPlan(
        settings=settings,
        secrets_type="infisical" if operator else "k8s",
        namespaces=namespaces,
        operator=operator,
        references=plans,
        warnings=tuple(warnings),
        over_read_budget=budget,
    )


def reads_per_refresh(plans: tuple[ReferencePlan, ...]) -> int:
    """Requests the sync objects make to Infisical's secrets routes at each refresh: one per source
    of an InfisicalStaticSecret, one per InfisicalSecret or ExternalSecret."""
    count = 0
    for plan in plans:
        for obj in plan.objects:
            if isinstance(obj, KubeObject) and obj.kind == "InfisicalStaticSecret":
                count += len(obj.content["spec"]["sources"])
            elif isinstance(obj, KubeObject) and obj.kind in POLLING_KINDS:
                count += 1
    return count


def read_budget_problem(config: InfisicalSettings, plans: tuple[ReferencePlan, ...]) -> str | None:
    """Why the operator would read more than the server allows a minute, with the arithmetic and
    the fixes; None when it fits."""
    reads, interval = reads_per_refresh(plans), names.interval_seconds(config.resync_interval)
    # ESO also validates each ClusterSecretStore (a login and a read) every --store-requeue-interval
    # (5 minutes, the chart's default), and all of them when it starts.
    stores = sum(
        1 for plan in plans for obj in plan.objects if isinstance(obj, KubeObject) and obj.kind == "ClusterSecretStore"
    )
    per_minute = reads * 60 / interval + stores / ESO_STORE_CHECK_MINUTES
    fewer = (
        "operator.api v1beta1 (v1alpha1 reads once per reference)"
        if config.operator.api == "v1alpha1"
        else "operator.sources: folder (one read per folder) or prefix (one read for all)"
        if config.operator.sources == "reference"
        else "fewer folders"
    )
    if reads + stores > config.read_budget:
        # The operator reconciles its objects one after another: each start, and each `up` that
        # changes them all, reads every one at once, whatever the interval.
        return (
            f"the operator would make {reads + stores} reads of Infisical at each refresh, and reads them all at once "
            f"when it starts, more than plugins.secrets.config.read_budget ({config.read_budget} a minute, the "
            f"server's rate limit for one client address); past it Infisical refuses reads and Secrets stop "
            f"following their values. Fix: {fewer}, or raise the server's limit and read_budget"
        )
    if per_minute <= config.read_budget:
        return None
    needed = math.ceil(reads * 60 / max(config.read_budget - stores / ESO_STORE_CHECK_MINUTES, 1))
    checks = f", and {stores} ESO store checks every {ESO_STORE_CHECK_MINUTES} minutes" if stores else ""
    return (
        f"the operator would read Infisical {per_minute:.0f} times a minute ({reads} reads every "
        f"{interval}s: plugins.secrets.config.resync_interval {config.resync_interval}{checks}), more than "
        f"plugins.secrets.config.read_budget ({config.read_budget} a minute, the server's rate limit for one client "
        f"address); past it Infisical refuses reads and Secrets stop following their values. Fix: set "
        f"resync_interval to at least {needed}s, {fewer}, or raise the server's limit and read_budget"
    )


def _warnings(manifest: LoadedManifest, references: tuple[Reference, ...]) -> list[str]:
    """What the plan allows but a careful user should hear about."""
    out = []
    plugin = manifest.model.plugins.secrets
    if plugin.config is not None:
        site = urlsplit(plugin.config.site_url)
        if site.scheme == "http" and site.hostname not in LOOPBACK:
            out.append(
                f"plugins.secrets.config.site_url is {plugin.config.site_url}: the machine identities' "
                "credentials and every secret would travel unencrypted; use https://"
            )
        if plugin.config.identities == "managed" and plugin.config.managed.role == "viewer":
            out.append(
                "plugins.secrets.config.identity.role is viewer: the operator's identity may read every environment "
                "and folder of project " + plugin.config.project_slug + " (a dev cluster could read prod); remove "
                "identity.role: viewer for a role that reads this stack's environment and the manifest's folders "
                "(identity.role: viewer is for Infisical plans that refuse custom roles; else use one project per "
                "environment)"
            )
    for ref in references:
        if plugin.type == "k8s" and not ref.keys:
            out.append(
                f"secrets.{ref.name} declares no keys: its Secret will be empty; add keys: {{NAME: {{config: "
                f"true}}}} or {{generate: {{}}}}"
            )
    return out


def deploy_config_problems(plan: StackPlan) -> list[str]:
    """Stack config a deployment needs but is not set (secrets, the cluster of a protected stack),
    each with the command that sets it.

    The Pulumi program treats these as errors; ``floe secrets plan`` cannot always see encrypted
    config (or CI has none), so it prints them as warnings.
    """
    settings, problems = plan.settings, []
    generated = any(isinstance(o, KubeObject) and o.generated() for r in plan.references for o in r.objects)
    if plan.secrets_type == "k8s" and generated and settings.passwords != "random":
        # Type k8s has no check that refuses a new value over one GeneratedPassword made (type
        # infisical's value writer has): without the mark, an `up` of a stack made before would
        # write a new value into every Secret.
        problems.append(
            "its generate: keys are made by random.RandomPassword, and a stack made by an earlier release holds "
            "them in GeneratedPassword, which an `up` would replace with new values: run "
            f"`floe secrets upgrade --stack {settings.stack}` once (it moves them unchanged and sets "
            "floe:passwords random; on a new stack it only sets that)"
        )
    if settings.protect and settings.kube_context is None:
        problems.append(
            "it is protected (floe:protect: true) but does not name its cluster, so it would deploy to whatever "
            f"kubeconfig context is current: run `{set_command(settings.stack, 'kubeContext', '<kubeconfig-context>')}`"
        )
    kubernetes_auth = plan.operator is not None and plan.operator.service_account is not None
    managed = plan.operator is not None and plan.operator.managed_identity is not None
    if kubernetes_auth and not managed and settings.operator_identity_id is None:
        problems.append(
            "the operator logs in with Kubernetes Auth (plugins.secrets.config.operator.auth: kubernetes) but the "
            "identity it logs in as is not set: run "
            f"`{set_command(settings.stack, 'operatorIdentityId', '<identity-id>')}`"
        )
    if kubernetes_auth and not managed and settings.operator_credentials:
        set_keys = sorted(settings.operator_credentials)
        problems.append(
            f"it sets {' and '.join(f'floe:{k}' for k in set_keys)}, but with operator.auth: kubernetes no client "
            "secret is kept in the cluster: run "
            + " and ".join(f"`pulumi config rm --stack {settings.stack} 'floe:{k}'`" for k in set_keys)
            + " (or set operator.auth: universal)"
        )
    if managed and settings.operator_identity_id is not None:
        problems.append(
            "it sets floe:operatorIdentityId, but with identities: managed the stack makes the operator's identity: "
            f"run `pulumi config rm --stack {settings.stack} 'floe:operatorIdentityId'`"
        )
    if managed and settings.operator_credentials:
        set_keys = sorted(settings.operator_credentials)
        problems.append(
            f"it sets {' and '.join(f'floe:{k}' for k in set_keys)}, but with identities: managed the stack makes "
            "the operator's identity and client secret itself: run "
            + " and ".join(f"`pulumi config rm --stack {settings.stack} 'floe:{k}'`" for k in set_keys)
        )
    if managed and settings.writer_credentials_set is False:
        client_id = set_command(settings.stack, "clientId", "<client-id>", namespace=WRITER_NAMESPACE)
        secret = set_command(settings.stack, "clientSecret", "<client-secret>", secret=True, namespace=WRITER_NAMESPACE)
        problems.append(
            "with identities: managed the identity Pulumi runs with makes the operator's identity, and it is not "
            f"set: run `{client_id}` and `{secret}` (or export {WRITER_ENV['clientId']} and "
            f"{WRITER_ENV['clientSecret']}); it needs an organization role that may create identities and a "
            "project role that may add members"
        )
    if plan.operator is not None and not kubernetes_auth and not managed and not settings.operator_credentials_set:
        problems.append(
            "the operator's machine identity is not set: run "
            f"`{set_command(settings.stack, 'operatorClientId', '<client-id>', secret=True)}` and "
            f"`{set_command(settings.stack, 'operatorClientSecret', '<client-secret>', secret=True)}`"
        )
    if plan.infisical_values() and settings.writer_credentials_set is False:
        client_id = set_command(settings.stack, "clientId", "<client-id>", namespace=WRITER_NAMESPACE)
        secret = set_command(settings.stack, "clientSecret", "<client-secret>", secret=True, namespace=WRITER_NAMESPACE)
        problems.append(
            "the writer identity (it writes generate: and config: true keys into Infisical) is not set: run "
            f"`{client_id}` and `{secret}` (or export {WRITER_ENV['clientId']} and {WRITER_ENV['clientSecret']})"
        )
    keys = settings.secret_value_keys
    if keys is None:
        return problems
    for source in plan.secret_sources():
        if source.config_key != "secretValues":
            continue
        ref, key = source.config_path
        if key not in keys.get(ref, frozenset()):
            problems.append(
                f"no value for key {key} of reference {ref}: run "
                f"`{set_command(settings.stack, ('secretValues', ref, key), '<value>', secret=True)}`"
            )
    return problems


def require_deploy_config(plan: StackPlan) -> None:
    problems = deploy_config_problems(plan)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise StackConfigError(f"{plan.settings.source}: stack {plan.settings.stack} is missing config:\n{lines}")


def _namespaces(
    settings: StackSettings, labels: Mapping[str, str], operator: OperatorPlan | None, plans: tuple[ReferencePlan, ...]
) -> tuple[KubeObject, ...]:
    if not settings.create_namespaces:
        return ()
    taken = {n.name for n in (operator.namespace, operator.eso_namespace) if n} if operator else set()
    wanted = sorted({p.reference.namespace for p in plans} - taken)
    return tuple(namespace_object(n, labels, settings.protect) for n in wanted)


def _check_rotations(settings: StackSettings, references: tuple[Reference, ...]) -> None:
    """Each ``floe:rotations`` mark names a ``generate:`` key: a mark for nothing rotates nothing."""
    generated = {(r.name, k.name) for r in references for k in r.keys if k.generate is not None}
    for ref, keys in settings.rotations.items():
        for key in keys:
            if (ref, key) not in generated:
                where = f"{NAMESPACE}:{config_path(('rotations', ref, key))}"
                raise StackConfigError(
                    f"{settings.source}: {where} names no generate: key of the manifest (generated keys: "
                    f"{', '.join(f'{r}.{k}' for r, k in sorted(generated)) or 'none'}): fix the name, or remove it "
                    f"with `pulumi config rm --stack {settings.stack} --path '{where}'`"
                )


def _check_secret_targets(
    manifest: LoadedManifest, operator: OperatorPlan | None, plans: tuple[ReferencePlan, ...]
) -> None:
    """Two writers of one Secret would fight forever; reject that before anything is created."""
    owners: dict[tuple[str, str], str] = {}
    if operator is not None and operator.identity is not None:
        assert operator.identity.namespace is not None
        what = (
            "plugins.secrets.config.identity_secret"
            if operator.service_account is None
            else f"the operator's identity id Secret ({operator.identity.name})"
        )
        owners[(operator.identity.namespace, operator.identity.name)] = what
    if operator is not None:
        for obj in operator.token_reviewer:
            if obj.kind == "Secret" and obj.namespace is not None:
                owners[(obj.namespace, obj.name)] = "the token reviewer's token Secret (identities: managed)"
    for plan in plans:
        ref = plan.reference
        target = (ref.namespace, ref.name)
        if target in owners:
            raise manifest.error(
                ref.declared_at,
                f"reference {ref.name!r} would write Secret {ref.namespace}/{ref.name}, which "
                f"{owners[target]} already targets: rename the reference or move it to another namespace",
            )
        owners[target] = ".".join(map(str, ref.declared_at))


def _check_value_targets(manifest: LoadedManifest, plans: tuple[ReferencePlan, ...]) -> None:
    """Two references writing one Infisical key would overwrite each other on every ``up``."""
    writers: dict[tuple[str, str], str] = {}
    for plan in plans:
        for value in plan.objects:
            if not isinstance(value, InfisicalValue):
                continue
            first = writers.setdefault((value.path, value.key), value.reference)
            if first != value.reference:
                raise manifest.error(
                    plan.reference.declared_at,
                    f"references {first!r} and {value.reference!r} both write key {value.key} into Infisical "
                    f"folder {value.path}: declare generate:/config: on one of them only (both still read it)",
                )
