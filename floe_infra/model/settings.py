"""Stack configuration (namespace ``floe``) as one typed object.

Two readers feed the same parser: the Pulumi program (``pulumi.Config``, values decrypted by the
engine) and ``floe secrets plan`` (``Pulumi.yaml`` + ``Pulumi.<stack>.yaml`` read as files, where
secret values stay ciphertext). Secret *values* never enter this object: only whether they are set,
and which keys ``floe:secretValues`` holds, so checks can name what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ..errors import StackConfigError
from . import names
from .yaml_source import YamlSyntaxError, load_yaml

NAMESPACE = "floe"
WRITER_NAMESPACE = "infisical"
WRITER_ENV = {
    "siteUrl": "INFISICAL_HOST",
    "clientId": "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID",
    "clientSecret": "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET",
}
"""The writer identity's ``infisical:*`` keys and the environment variables Infisical's CLI and
Terraform provider read instead (the site URL defaults to the manifest's)."""
SCALAR_KEYS = (
    "environment",
    "manifest",
    "jobsNamespace",
    "createNamespaces",
    "protect",
    "kubeContext",
    "operatorIdentityId",
    "operatorSecretRotation",
    "kubernetesHost",
    "passwords",
)
OBJECT_KEYS = ("rotations",)
SECRET_KEYS = ("operatorClientId", "operatorClientSecret", "secretValues")
KNOWN_KEYS = SCALAR_KEYS + OBJECT_KEYS + SECRET_KEYS


@dataclass(frozen=True)
class StackSettings:
    """What one stack's configuration says; ``None`` for a secret means plan could not tell."""

    stack: str
    environment: str
    manifest: str = "manifest.yaml"
    jobs_namespace: str = "floe-jobs"
    create_namespaces: bool = True
    protect: bool = False
    kube_context: str | None = None
    operator_credentials_set: bool = False
    operator_credentials: frozenset[str] = frozenset()  # which of operatorClientId/Secret are set
    operator_identity_id: str | None = None
    operator_secret_rotation: str | None = None
    kubernetes_host: str | None = None  # the API server's URL as Infisical reaches it (managed Kubernetes Auth)
    secret_value_keys: Mapping[str, frozenset[str]] | None = None
    rotations: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    passwords: str | None = None  # "random": floe secrets upgrade ran (type k8s needs it for generate: keys)
    writer_credentials_set: bool | None = None
    source: str = "stack config"


def writer_credentials_present(config: Callable[[str], object | None]) -> bool:
    """Whether the writer identity is set, in ``infisical:*`` config (``config(key)``) or the environment."""
    return all(config(k) is not None or os.environ.get(WRITER_ENV[k]) for k in ("clientId", "clientSecret"))


def set_command(
    stack: str,
    key: str | tuple[str, ...],
    value: str = "<value>",
    *,
    secret: bool = False,
    namespace: str = NAMESPACE,
) -> str:
    """The exact ``pulumi config set`` command that fixes a missing key; a tuple is a path into an
    object (``--path``), where a part with a dot is quoted (``secretValues["a.b"].KEY``: a reference
    name may hold dots, which ``--path`` would read as nesting)."""
    path = isinstance(key, tuple) and len(key) > 1
    flags = (" --secret" if secret else "") + (" --path" if path else "")
    return f"pulumi config set{flags} --stack {stack} '{namespace}:{config_path(key)}' {value}"


def config_path(key: str | tuple[str, ...]) -> str:
    """A key, or a path into an object as ``--path`` reads it: ``secretValues.ref.KEY``, with a
    part that holds a dot quoted (``secretValues["my.ref"].KEY``)."""
    if isinstance(key, str):
        return key
    head, *rest = key
    return head + "".join(f'["{part}"]' if "." in part else f".{part}" for part in rest)


def _pulumi_bool(value: object) -> object:
    """Pulumi config holds strings: ``"true"``/``"false"`` (any case) are booleans too."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, bool):
        return value
    raise ValueError(f" must be true or false; found {names.shown(value)}")


def _rule(check: Callable[[str], str]) -> Callable[[str], str]:
    def checked(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f": {exc}") from None

    return checked


PulumiBool = Annotated[bool, BeforeValidator(_pulumi_bool)]
Text = Annotated[str, Field(min_length=1)]


class _StackConfig(BaseModel):
    """The ``floe:*`` keys of one stack, as Pulumi stores them (camelCase, strings for booleans).

    Each validation error's message is what follows ``floe:<key>`` in the message the user sees."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)

    environment: Annotated[Text, AfterValidator(_rule(names.environment_slug))]
    manifest: Text = "manifest.yaml"
    jobs_namespace: Annotated[Text, AfterValidator(_rule(names.dns_label))] = Field("floe-jobs", alias="jobsNamespace")
    create_namespaces: PulumiBool = Field(True, alias="createNamespaces")
    protect: PulumiBool = False
    kube_context: Text | None = Field(None, alias="kubeContext")
    operator_identity_id: Annotated[Text, AfterValidator(_rule(names.identity_id))] | None = Field(
        None, alias="operatorIdentityId"
    )
    operator_secret_rotation: Annotated[Text, AfterValidator(_rule(names.rotation))] | None = Field(
        None, alias="operatorSecretRotation"
    )
    kubernetes_host: Annotated[Text, AfterValidator(_rule(names.url))] | None = Field(None, alias="kubernetesHost")
    operator_client_id: object = Field(None, alias="operatorClientId")
    operator_client_secret: object = Field(None, alias="operatorClientSecret")
    secret_values: object = Field(None, alias="secretValues")
    rotations: object = None
    passwords: Literal["random"] | None = None


def parse_stack_config(stack: str, values: Mapping[str, object], source: str) -> StackSettings:
    """Validate raw ``floe:*`` values (keys without the namespace) into StackSettings."""
    try:
        config = _StackConfig.model_validate(dict(values))
    except ValidationError as exc:
        raise StackConfigError(_message(stack, source, exc.errors(include_url=False))) from None
    return StackSettings(
        stack=stack,
        environment=config.environment,
        manifest=config.manifest,
        jobs_namespace=config.jobs_namespace,
        create_namespaces=config.create_namespaces,
        protect=config.protect,
        kube_context=config.kube_context,
        operator_credentials_set=config.operator_client_id is not None and config.operator_client_secret is not None,
        operator_credentials=frozenset(
            key
            for key, value in (
                ("operatorClientId", config.operator_client_id),
                ("operatorClientSecret", config.operator_client_secret),
            )
            if value is not None
        ),
        operator_identity_id=config.operator_identity_id,
        operator_secret_rotation=config.operator_secret_rotation,
        kubernetes_host=config.kubernetes_host,
        secret_value_keys=_secret_value_keys(config.secret_values, source),
        rotations=_rotations(config.rotations, source),
        passwords=config.passwords,
        source=source,
    )


def _message(stack: str, source: str, errors: list[ErrorDetails]) -> str:
    """One line for the first problem (unknown keys first), worded for a Pulumi user."""
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return (
            f"{source}: unknown key {NAMESPACE}:{unknown[0]}: remove it or fix its spelling "
            f"(known keys: {', '.join(NAMESPACE + ':' + k for k in KNOWN_KEYS)})"
        )
    error = errors[0]
    key, found = str(error["loc"][0]), error.get("input")
    if error["type"] == "missing":
        return (
            f"{source}: {NAMESPACE}:{key} is not set (the Infisical environment slug of this "
            f"stack): run `{set_command(stack, key, stack)}`"
        )
    if error["type"] == "value_error":
        return f"{source}: {NAMESPACE}:{key}{error['msg'].removeprefix('Value error, ')}"
    if error["type"] == "literal_error":
        return f"{source}: {NAMESPACE}:{key}: {error['msg'].lower()}; found {names.shown(found)}"
    return f"{source}: {NAMESPACE}:{key} must be a non-empty string; found {names.shown(found)}"


def _is_ciphertext(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _secret_value_keys(raw: object, source: str) -> Mapping[str, frozenset[str]] | None:
    """Keys of ``floe:secretValues``; None when it is one opaque ciphertext (plan cannot look in)."""
    if raw is None:
        return {}
    if _is_ciphertext(raw):
        return None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise StackConfigError(
            f"{source}: {NAMESPACE}:secretValues must be an object {{reference: {{KEY: value}}}}: "
            f"set each value with `pulumi config set --secret --path '{NAMESPACE}:secretValues.<reference>.<KEY>'`"
        )
    return {str(ref): frozenset(str(k) for k in keys) for ref, keys in raw.items()}


def _rotations(raw: object, source: str) -> Mapping[str, Mapping[str, str]]:
    """``floe:rotations``: {reference: {KEY: mark}}; a new mark makes a new value of that one
    ``generate:`` key (the mark is its RandomPassword's keeper)."""
    how = f"`pulumi config set --path '{NAMESPACE}:{config_path(('rotations', '<reference>', '<KEY>'))}' 2026-12`"
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise StackConfigError(
            f"{source}: {NAMESPACE}:rotations must be an object {{reference: {{KEY: mark}}}}; found "
            f"{names.shown(raw)}: set each mark with {how}"
        )
    found: dict[str, Mapping[str, str]] = {}
    for ref, keys in raw.items():
        for key, mark in keys.items():
            try:
                if isinstance(mark, int) and not isinstance(mark, bool):
                    mark = str(mark)  # `pulumi config set --path` stores 202612 as a number
                if not isinstance(mark, str):
                    raise ValueError(f"a rotation mark must be a string; found {names.shown(mark)}")
                names.rotation(mark)
            except ValueError as exc:
                raise StackConfigError(
                    f"{source}: {NAMESPACE}:{config_path(('rotations', str(ref), str(key)))}: {exc}: set it with {how}"
                ) from None
        found[str(ref)] = MappingProxyType({str(k): str(v) for k, v in keys.items()})  # checked above
    return MappingProxyType(found)


def committed_plaintext_secrets(project_dir: Path, stack: str) -> list[str]:
    """For the program: credentials in plaintext in ``Pulumi.<stack>.yaml`` (the engine reads
    them without telling plaintext from ciphertext)."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    return plaintext_secrets(stack_file, stack, _config(stack_file, project=False)) if stack_file.is_file() else []


def read_stack_files(project_dir: Path, stack: str) -> StackSettings:
    """Read ``Pulumi.yaml`` defaults and ``Pulumi.<stack>.yaml`` as the pulumi CLI would, offline."""
    project_file = project_dir / "Pulumi.yaml"
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not project_file.is_file():
        raise StackConfigError(f"{project_file}: not found: run floe from the project directory (where Pulumi.yaml is)")
    if not stack_file.is_file():
        stacks = sorted(f.name[len("Pulumi.") : -len(".yaml")] for f in project_dir.glob("Pulumi.*.yaml"))
        raise StackConfigError(
            f"{stack_file}: not found: create the stack with `pulumi stack init {stack}` and "
            f"`{set_command(stack, 'environment', stack)}`, or pick another --stack "
            f"({'stacks here: ' + ', '.join(stacks) if stacks else 'no stack files here'})"
        )
    stack_entries = _config(stack_file, project=False)
    project_entries = _config(project_file, project=True)
    plaintext = plaintext_secrets(stack_file, stack, stack_entries) + plaintext_secrets(
        project_file, stack, project_entries
    )
    if plaintext:
        raise StackConfigError("\n".join(plaintext))
    values = {**_namespace_entries(project_entries, NAMESPACE), **_namespace_entries(stack_entries, NAMESPACE)}
    settings = parse_stack_config(stack, values, stack_file.name)
    writer = _namespace_entries(stack_entries, WRITER_NAMESPACE)
    return replace(settings, writer_credentials_set=writer_credentials_present(writer.get))


def writer_entries(project_dir: Path, stack: str) -> dict[str, object]:
    """The stack file's ``infisical:*`` entries (keys without the namespace), as written: a plain
    value, or ``{secure: <ciphertext>}`` that only the pulumi CLI can decrypt."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    return _namespace_entries(_config(stack_file, project=False), WRITER_NAMESPACE) if stack_file.is_file() else {}


PLAINTEXT_FORBIDDEN = (
    f"{NAMESPACE}:operatorClientSecret",
    f"{NAMESPACE}:secretValues",
    f"{WRITER_NAMESPACE}:clientSecret",
)
"""Keys whose values are credentials: a committed file may hold them only as ciphertext (``secure:``)."""


def plaintext_secrets(path: Path, stack: str, entries: Mapping[str, object]) -> list[str]:
    """Each credential ``entries`` (a file's config) holds in plaintext, with the command that
    stores it encrypted; the value itself is never repeated."""
    problems = []
    for key in PLAINTEXT_FORBIDDEN:
        if key not in entries:
            continue
        namespace, name = key.split(":", 1)
        for leaf, value in _leaves((name,), entries[key]):
            if not _is_ciphertext(value):
                command = set_command(stack, leaf, secret=True, namespace=namespace)
                problems.append(
                    f"{path.name}: {namespace}:{config_path(leaf)} is in plaintext in a committed file: delete it "
                    f"there and run `{command}`"
                )
    return problems


def _leaves(name: tuple[str, ...], value: object) -> list[tuple[tuple[str, ...], object]]:
    """(path, value) of each leaf; a ciphertext is a leaf."""
    if isinstance(value, dict) and value and not _is_ciphertext(value):
        return [leaf for k, v in value.items() for leaf in _leaves((*name, str(k)), v)]
    return [(name, value)]


def _namespace_entries(entries: Mapping[str, object], namespace: str) -> dict[str, object]:
    """The ``<namespace>:*`` entries, keys without the namespace."""
    prefix = namespace + ":"
    return {k[len(prefix) :]: v for k, v in entries.items() if k.startswith(prefix)}


def _config(path: Path, *, project: bool) -> dict[str, object]:
    """A file's ``config:`` entries by namespaced key.

    In ``Pulumi.yaml`` (``project``) a key without a namespace is in the project's namespace (ours
    is floe) and an entry may be a declaration ``{type, default}``: its default is the value.
    """
    try:
        data = load_yaml(path).data
    except (OSError, UnicodeDecodeError, YamlSyntaxError) as exc:
        raise StackConfigError(f"{path}: cannot read it: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StackConfigError(f"{path}: expected a mapping; found {type(data).__name__}")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(f"{path}: config: expected a mapping of key: value; found {type(config).__name__}")
    values: dict[str, object] = {}
    for raw_key, value in config.items():
        key = NAMESPACE + ":" + str(raw_key) if project and ":" not in str(raw_key) else str(raw_key)
        if project and isinstance(value, dict) and ("default" in value or "value" in value):
            value = value.get("value", value.get("default"))
        values[key] = value
    return values
