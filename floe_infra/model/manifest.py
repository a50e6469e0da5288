"""manifest.yaml: the typed contract, its loading, and secret-reference discovery.

The models reject unknown keys and coerce nothing (``strict``), so a typo or a quoted boolean is an
error with a line number rather than a silently different deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from ..errors import ManifestError
from . import names
from .registry import BUILT_IN, ENTRY_POINT_GROUP, plugin_types
from .yaml_source import LoadedYaml, PathKey, YamlSyntaxError, load_yaml

SECRET_REF_SUFFIX = "_secret_ref"


DnsLabel = Annotated[str, AfterValidator(names.dns_label)]
DnsName = Annotated[str, AfterValidator(names.dns_name)]
FolderPath = Annotated[str, AfterValidator(names.folder_path)]
EnvVarName = Annotated[str, AfterValidator(names.env_var)]
ProjectSlug = Annotated[str, AfterValidator(names.slug)]
Interval = Annotated[str, AfterValidator(names.interval)]
Url = Annotated[str, AfterValidator(names.url)]
SiteUrl = Annotated[str, AfterValidator(names.site_url)]
ExactVersion = Annotated[str, AfterValidator(names.exact_version)]

DEFAULT_CHART_REPO = "https://dl.cloudsmith.io/public/infisical/helm-charts/helm/charts/"
DEFAULT_CHART_VERSION = "v0.11.5"
ESO_CHART_REPO = "https://charts.external-secrets.io"
ESO_CHART_VERSION = "0.16.2"  # serves external-secrets.io/v1; the version make e2e builds and runs (tools/build.sh)
DEFAULT_READ_BUDGET = 40


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


OperatorAuth = Literal["universal", "kubernetes"]
DEFAULT_AUTH_SERVICE_ACCOUNT = "infisical-auth"


class OperatorSettings(_Model):
    namespace: DnsLabel = "infisical"
    chart_version: ExactVersion = DEFAULT_CHART_VERSION
    chart_repo: Url = DEFAULT_CHART_REPO
    api: Literal["v1alpha1", "v1beta1"] = "v1beta1"
    # How the operator logs in to Infisical: universal (a client id and secret in a Secret), or
    # kubernetes (a short-lived token of service_account, which the program creates in the
    # operator's namespace; the identity id is stack config floe:operatorIdentityId).
    auth: OperatorAuth = "universal"
    service_account: DnsName | None = None
    # What one InfisicalStaticSecret reads (v1beta1): reference (one object per reference), folder
    # (one per folder, its references' Secrets as targets) or prefix (one recursive read of every
    # folder at their common prefix, each Secret templated from its declared keys).
    sources: Literal["reference", "folder", "prefix"] = "reference"

    @model_validator(mode="after")
    def _shared_sources_need_v1beta1(self) -> OperatorSettings:
        if self.sources != "reference" and self.api != "v1beta1":
            raise ValueError(
                f"sources: {self.sources} shares one InfisicalStaticSecret between references, which only "
                "api: v1beta1 has (v1alpha1 reads once per reference): remove api: v1alpha1 or sources"
            )
        return self

    @model_validator(mode="after")
    def _service_account_needs_kubernetes_auth(self) -> OperatorSettings:
        if self.auth != "kubernetes" and self.service_account:
            raise ValueError("service_account is for auth: kubernetes; set operator.auth: kubernetes or remove it")
        return self

    @property
    def auth_service_account(self) -> str:
        """The ServiceAccount whose tokens log the operator in (kubernetes auth), in its namespace."""
        return self.service_account or DEFAULT_AUTH_SERVICE_ACCOUNT


class EsoSettings(_Model):
    """External Secrets Operator, for references with ``via: eso``; installed only if asked, and
    then kept until ``install`` is false again. ``values``: Helm values for its chart, over the
    chart's own, but none that would break what the stack makes (see :data:`ESO_VALUES_REFUSED`).
    ``chart_version`` has no default: a stack that installed ESO with an earlier release has
    another version than the one this release tests, and a lower version would remove CRDs."""

    install: bool = False
    namespace: DnsLabel = "external-secrets"
    chart_version: ExactVersion | None = None
    chart_repo: Url = ESO_CHART_REPO
    values: dict[str, Any] = {}

    @field_validator("values")
    @classmethod
    def _values_keep_what_the_stack_needs(cls, values: dict[str, Any]) -> dict[str, Any]:
        _json_values(values, "values")
        for path, refused, why in ESO_VALUES_REFUSED:
            found: Any = values
            for part in path:
                found = found.get(part, _ABSENT) if isinstance(found, dict) else _ABSENT
            if found is not _ABSENT and refused(found):
                raise ValueError(f"{'.'.join(path)}: {found!r} is refused: {why}; remove it from eso.values")
        return values

    @model_validator(mode="after")
    def _a_version_when_installed(self) -> EsoSettings:
        if self.install and self.chart_version is None:
            raise ValueError(
                f"eso.install: true needs eso.chart_version: {ESO_CHART_VERSION} is the version floe-infra runs in "
                "its tests (take it for a new install); a stack whose earlier release installed ESO runs 1.3.1 (the "
                "former default): set 1.3.1 to keep it, as a lower version would remove the CRDs it lacks. ESO is "
                "installed whenever install is true, with or without a via: eso reference"
            )
        return self


_ABSENT = object()
ESO_VALUES_REFUSED: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (
        ("installCRDs",),
        lambda v: True,
        "the stack applies ESO's CRDs itself, outside the release, so that removing "
        "the release never deletes them (and every ESO object with them)",
    ),
    (
        ("processClusterStore",),
        lambda v: v is False,
        "the stack's ClusterSecretStores need ESO's cluster-store reconciler",
    ),
    (("createOperator",), lambda v: v is False, "the stack's ExternalSecrets need ESO's controller"),
    (("scopedNamespace",), bool, "a namespace-scoped ESO ignores the stack's ClusterSecretStores"),
    (("scopedRBAC",), lambda v: v is True, "a namespace-scoped ESO ignores the stack's ClusterSecretStores"),
    (("crds", "createClusterSecretStore"), lambda v: v is False, "the stack makes ClusterSecretStores"),
)
"""Chart values of ESO that would leave the stack's own objects unserved: (path, refused when, why)."""


def _json_values(value: Any, where: str) -> None:
    """Helm values are JSON: string keys, and strings, numbers, booleans, null, lists and maps."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string: quote it")
            _json_values(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _json_values(inner, f"{where}[{i}]")
    elif not (value is None or isinstance(value, (str, bool, int, float))):
        raise ValueError(f"{where}: {value!r} ({type(value).__name__}) is not a Helm value: quote it as a string")


def _cidr(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR range (such as 10.0.0.0/8)") from None
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
MIN_TOKEN_TTL = 15
"""The operator (v1beta1) keeps a login for 70% of its TTL, and none under 10 s: shorter would be a
login per read."""


class ManagedIdentitySettings(_Model):
    """``identity``: how the identity the stack makes (``identities: managed``) may read and log in.
    The defaults are the least an operator needs; each maps to the Terraform provider's setting."""

    # scoped: a project role of its own that may only read secrets in the stack's environment, in
    # the manifest's folders (infisical_project_role); viewer: the built-in role that reads the
    # whole project, every environment (an explicit opt-in that the plan warns about).
    role: Literal["scoped", "viewer"] = "scoped"
    token_ttl: Interval = "10m"  # access_token_ttl
    token_max_ttl: Interval = "1h"  # access_token_max_ttl
    trusted_ips: list[Cidr] = []  # access_token_trusted_ips / client_secret_trusted_ips; [] = anywhere
    audience: str | None = None  # Kubernetes Auth allowed_audience; None: the API server's own audience

    @model_validator(mode="after")
    def _ttls(self) -> ManagedIdentitySettings:
        ttl, max_ttl = names.interval_seconds(self.token_ttl), names.interval_seconds(self.token_max_ttl)
        if ttl < MIN_TOKEN_TTL:
            raise ValueError(
                f"token_ttl is {self.token_ttl}: at least {MIN_TOKEN_TTL}s (the operator keeps a login "
                "for 70% of it, and none under 10s)"
            )
        if max_ttl < ttl:
            raise ValueError(
                f"token_max_ttl ({self.token_max_ttl}) is shorter than token_ttl ({self.token_ttl}): "
                "make it at least as long"
            )
        if max_ttl > 315360000:
            raise ValueError(f"token_max_ttl is {self.token_max_ttl}: Infisical allows at most 3650d (315360000s)")
        if self.audience is not None and not self.audience.strip():
            raise ValueError("audience is empty: remove it (the API server's own audience is the default) or name one")
        return self


class InfisicalSettings(_Model):
    site_url: SiteUrl
    project_slug: ProjectSlug
    identity_secret: DnsName = "infisical-machine-identity"
    resync_interval: Interval = "60s"
    # Secret reads a minute that the server allows one client address (the whole cluster's operator):
    # self-hosted Infisical's limit for a logged-in identity on its secrets routes.
    read_budget: int = Field(default=DEFAULT_READ_BUDGET, ge=1, le=1_000_000)
    operator: OperatorSettings = OperatorSettings()
    eso: EsoSettings = EsoSettings()
    # external: bring the operator's identity (stack config); managed: the stack makes it, with the
    # identity Pulumi runs with (infisical:clientId), which must be allowed to.
    identities: Literal["external", "managed"] = "external"
    identity: ManagedIdentitySettings | None = None

    @model_validator(mode="after")
    def _managed_kubernetes_auth_is_v1beta1(self) -> InfisicalSettings:
        if self.identities == "managed" and self.operator.auth == "kubernetes" and self.operator.api == "v1alpha1":
            raise ValueError(
                "identities: managed with operator.auth: kubernetes names the identity it makes through a Secret, "
                "which only v1beta1 reads: remove operator.api: v1alpha1 (v1beta1 is the default)"
            )
        return self

    @model_validator(mode="after")
    def _identity_is_for_managed(self) -> InfisicalSettings:
        if self.identity is not None and self.identities != "managed":
            raise ValueError(
                "identity: sets the identity the stack makes: set identities: managed, or remove identity:"
            )
        if self.identity and self.identity.audience and self.operator.auth != "kubernetes":
            raise ValueError("identity.audience is for Kubernetes Auth: set operator.auth: kubernetes or remove it")
        return self

    @property
    def managed(self) -> ManagedIdentitySettings:
        """The managed identity's settings, defaults where none are given."""
        return self.identity or ManagedIdentitySettings()

    @property
    def host_api(self) -> str:
        """The operator's ``hostAPI``: the site URL with the API prefix."""
        return f"{self.site_url.rstrip('/')}/api"


class SecretsPluginSettings(_Model):
    """``plugins.secrets``: ``config`` is typed for infisical; any other plugin gets it raw (as
    ``options``) and validates it itself, so a third-party plugin needs no change here."""

    type: str = "infisical"
    config: InfisicalSettings | None = None
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _raw_config_for_other_plugins(cls, data: Any) -> Any:
        if isinstance(data, dict) and "options" in data:
            raise ValueError("unknown key options: plugin settings go under config")
        if isinstance(data, dict) and data.get("type", "infisical") != "infisical" and "config" in data:
            data = {k: v for k, v in data.items() if k != "config"} | {"options": data["config"]}
        return data

    @field_validator("type")
    @classmethod
    def _known_plugin(cls, value: str) -> str:
        if value not in BUILT_IN and value not in (known := plugin_types()):
            raise ValueError(
                f"{value!r} is not a secrets plugin: use infisical or k8s, or install the package that provides "
                f"it (entry point group {ENTRY_POINT_GROUP}; installed: {', '.join(sorted(known))})"
            )
        return value

    @model_validator(mode="after")
    def _config_for_infisical(self) -> SecretsPluginSettings:
        if self.type == "infisical" and self.config is None:
            raise ValueError(
                "type infisical (the default) needs a config section: add plugins.secrets.config with "
                "site_url and project_slug (or set plugins.secrets.type: k8s)"
            )
        if self.type == "k8s" and self.options:
            raise ValueError("type k8s takes no config: remove plugins.secrets.config")
        return self


class Plugins(_Model):
    secrets: SecretsPluginSettings

    @model_validator(mode="before")
    @classmethod
    def _default_secrets_plugin(cls, data: Any) -> Any:
        # Infisical is the default: with no section, the model asks for its config by name.
        return {"secrets": {}} if isinstance(data, dict) and "secrets" not in data else data


SpecialChars = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[!-/:-@\[-`{-~]+$")]
"""ASCII punctuation only: letters and digits come from the other character classes."""
MinCount = Annotated[int, Field(ge=0, le=256)]


class Generate(_Model):
    """A value ``random.RandomPassword`` makes, with the knobs it takes (its names, snake_case)."""

    length: Annotated[int, Field(ge=8, le=256)] = 32
    special: bool = True
    min_upper: MinCount = 0
    min_lower: MinCount = 0
    min_numeric: MinCount = 0
    min_special: MinCount = 0
    override_special: SpecialChars | None = None

    @model_validator(mode="after")
    def _satisfiable(self) -> Generate:
        minimums = self.min_upper + self.min_lower + self.min_numeric + self.min_special
        if minimums > self.length:
            raise ValueError(
                f"min_upper + min_lower + min_numeric + min_special is {minimums}, more than length "
                f"{self.length}: raise length or lower a minimum"
            )
        if not self.special and (self.min_special or self.override_special is not None):
            raise ValueError(
                "special: false makes no special characters: remove min_special and override_special, "
                "or set special: true"
            )
        return self


class KeySpec(_Model):
    config: bool = False
    generate: Generate | None = None
    adopt: bool = False
    renamed_from: EnvVarName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> KeySpec:
        if self.config and self.generate is not None:
            raise ValueError("generate and config: true are mutually exclusive: keep one of them")
        if self.adopt and not (self.config or self.generate):
            raise ValueError(
                "adopt: true takes over a key this stack writes: add generate: or config: true, or remove adopt"
            )
        if self.renamed_from and not (self.config or self.generate):
            raise ValueError(
                "renamed_from renames a key this stack writes: add generate: or config: true, or remove renamed_from"
            )
        return self


Via = Literal["operator", "eso"]


class SecretEntry(_Model):
    path: FolderPath | None = None
    namespace: DnsLabel | None = None
    auto_reload: bool = True
    via: Via = "operator"
    keys: dict[EnvVarName, KeySpec] = {}

    @model_validator(mode="after")
    def _renames_name_gone_keys(self) -> SecretEntry:
        for key, spec in self.keys.items():
            if spec.renamed_from is not None and spec.renamed_from in self.keys:
                raise ValueError(
                    f"{key} is renamed_from {spec.renamed_from}, which is still a key here: remove "
                    f"{spec.renamed_from}, or drop renamed_from"
                )
        return self


class Manifest(BaseModel):
    """The whole file. Sections other than ``plugins`` and ``secrets`` are platform sections
    (compute, catalog, ...) owned by other tools: kept as mappings, scanned for secret refs."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    plugins: Plugins
    secrets: dict[DnsName, SecretEntry] = {}

    @model_validator(mode="before")
    @classmethod
    def _default_plugins(cls, data: Any) -> Any:
        return {**data, "plugins": {}} if isinstance(data, dict) and "plugins" not in data else data

    @property
    def sections(self) -> Mapping[str, object]:
        return dict(self.__pydantic_extra__ or {})


KeySource = Literal["manual", "config", "generate"]


@dataclass(frozen=True)
class KeyDecl:
    """One key a reference must hold, and who provides its value."""

    name: str
    source: KeySource
    generate: Generate | None = None  # source "generate": how the value is made
    adopt: bool = False
    renamed_from: str | None = None


@dataclass(frozen=True)
class Reference:
    """A resolved secret reference: one Infisical folder synced into one Kubernetes Secret."""

    name: str
    path: str
    namespace: str
    auto_reload: bool
    keys: tuple[KeyDecl, ...]
    declared_at: PathKey
    via: Via = "operator"


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest with the file it came from, for messages that point into it."""

    source: str
    model: Manifest
    yaml: LoadedYaml

    def error(self, path: PathKey, message: str) -> ManifestError:
        return ManifestError(self.source, [_locate(self.yaml, path, message)])

    def references(self, default_namespace: str) -> tuple[Reference, ...]:
        """Discovered and declared references, sorted by name; raises ManifestError on conflicts."""
        return _resolve(self, default_namespace)


def load_manifest(path: Path) -> LoadedManifest:
    """Read, parse and validate ``path``; every failure is a ManifestError naming the file."""
    source = str(path)
    try:
        loaded = load_yaml(path)
    except FileNotFoundError as exc:
        raise ManifestError(
            source,
            [
                "file not found: create it (see manifest.yaml in the repository) "
                "or point floe:manifest / --manifest at it"
            ],
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(source, [f"cannot read the file: {exc}"]) from exc
    except YamlSyntaxError as exc:
        raise ManifestError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(loaded.data, dict):
        found = "an empty file" if loaded.data is None else type(loaded.data).__name__
        raise ManifestError(source, [f"expected a mapping of plugins:, secrets: and platform sections; found {found}"])
    try:
        model = Manifest.model_validate(loaded.data)
    except ValidationError as exc:
        problems = [_locate(loaded, _loc(e), _describe(e)) for e in exc.errors(include_url=False)]
        raise ManifestError(source, problems) from exc
    manifest = LoadedManifest(source=source, model=model, yaml=loaded)
    problems = _check_sections(manifest)
    if problems:
        raise ManifestError(source, problems)
    return manifest


def _loc(error: ErrorDetails) -> PathKey:
    return tuple(p for p in error["loc"] if p != "[key]")


def _describe(error: ErrorDetails) -> str:
    kind, msg, found = error["type"], error["msg"], error.get("input")
    field = str(error["loc"][-1]) if error["loc"] else ""
    if kind == "missing":
        return "required field is missing: add it"
    if kind == "extra_forbidden":
        return f"unknown key (found {names.shown(found)}): remove it or fix its spelling"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        if found is None:
            return "has no value: write {} (for a key, {} means it is set by hand in Infisical)"
        if isinstance(found, list) and field == "keys" and all(isinstance(k, str) for k in found):
            example = ", ".join(f"{k}: {{}}" for k in found[:3])
            return f"must be a mapping of key names to settings, not a list: write {{{example}}}"
        return f"must be a mapping (key: value lines); found {names.shown(found)}"
    if kind == "string_type" and isinstance(found, int) and not isinstance(found, bool) and field.endswith("interval"):
        return f"{found} has no unit: write {found}s (or m, h, d, w)"
    if isinstance(found, (str, int, float, bool)) or found is None:
        return f"{msg}; found {names.shown(found)}"
    return f"{msg}; found a {type(found).__name__}"


def _locate(loaded: LoadedYaml, path: PathKey, message: str) -> str:
    dotted = ".".join(str(p) for p in path) or "(top level)"
    line = loaded.line_of(path)
    where = f"line {line}: " if line is not None else ""
    return f"{where}{dotted}: {message}"


def _ref_fields(section: object) -> list[tuple[str, object]]:
    if not isinstance(section, dict) or "type" not in section:
        return []
    return [(str(k), v) for k, v in section.items() if str(k).endswith(SECRET_REF_SUFFIX)]


def _check_sections(manifest: LoadedManifest) -> list[str]:
    problems = []
    for name, section in manifest.model.sections.items():
        fields = _ref_fields(section)
        if not fields:
            continue
        assert isinstance(section, dict)
        if not isinstance(section["type"], str):
            problems.append(_locate(manifest.yaml, (name, "type"), f"must be a string; found {section['type']!r}"))
        for key, value in fields:
            if not isinstance(value, str):
                problems.append(
                    _locate(manifest.yaml, (name, key), f"must be a secret reference name; found {value!r}")
                )
                continue
            try:
                names.dns_name(value)
            except ValueError as exc:
                problems.append(_locate(manifest.yaml, (name, key), str(exc)))
    return problems


def _resolve(manifest: LoadedManifest, default_namespace: str) -> tuple[Reference, ...]:
    discovered: dict[str, tuple[str, PathKey]] = {}
    problems: list[str] = []
    for section_name, section in manifest.model.sections.items():
        for key, value in _ref_fields(section):
            assert isinstance(section, dict) and isinstance(value, str)
            path = f"/{section_name}/{section['type']}"
            where: PathKey = (section_name, key)
            previous = discovered.get(value)
            if (
                previous
                and previous[0] != path
                and not (value in manifest.model.secrets and manifest.model.secrets[value].path)
            ):
                first = ".".join(map(str, previous[1]))
                problems.append(
                    _locate(
                        manifest.yaml,
                        where,
                        f"reference {value!r} is also used by {first} with default path {previous[0]}, "
                        f"not {path}: declare secrets.{value}.path to say which folder it reads",
                    )
                )
            discovered.setdefault(value, (path, where))
    if problems:
        raise ManifestError(manifest.source, problems)

    references = []
    for name in sorted(set(discovered) | set(manifest.model.secrets)):
        entry = manifest.model.secrets.get(name, SecretEntry())
        default_path, where = discovered.get(name, (f"/{name}", ("secrets", name)))
        keys = tuple(
            KeyDecl(
                name=key,
                source="generate" if spec.generate else "config" if spec.config else "manual",
                generate=spec.generate,
                adopt=spec.adopt,
                renamed_from=spec.renamed_from,
            )
            for key, spec in sorted(entry.keys.items())
        )
        references.append(
            Reference(
                name=name,
                path=entry.path or default_path,
                namespace=entry.namespace or default_namespace,
                auto_reload=entry.auto_reload,
                via=entry.via,
                keys=keys,
                declared_at=("secrets", name) if name in manifest.model.secrets else where,
            )
        )
    return tuple(references)
