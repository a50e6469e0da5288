"""Reference tables of the docs, generated from the code so that they cannot drift.

Each table lives in a page of docs/ between ``<!-- generated:begin NAME -->`` and
``<!-- generated:end NAME -->``:

- ``stack-config`` (docs/stack-config.md): every ``floe:`` key of ``floe_infra.model.settings``
  (``KNOWN_KEYS``) and every ``infisical:`` key (``WRITER_ENV``), with the descriptions below;
  a key of the model without a description here (or a description of a key the model does not
  have) stops the generator;
- ``manifest-fields`` (docs/manifest.md): every field of the manifest's pydantic models, with its
  type, rule and default;
- ``cli`` (docs/cli.md): every ``floe`` command and option, from the argparse parser.

``python tools/gen_docs.py`` rewrites the pages; ``--check`` only says which differ (exit 1).
tests/test_docs.py runs the check in ``make test``.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from floe_infra import cli
from floe_infra.model import manifest, settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# --- stack configuration --------------------------------------------------------------------

FLOE_KEYS: dict[str, tuple[str, str]] = {
    "environment": ("required", "Infisical environment slug this stack reads (dev/staging/prod)"),
    "manifest": ("`manifest.yaml`", "manifest path, relative to the project root (where `Pulumi.yaml` is)"),
    "jobsNamespace": ("`floe-jobs`", "default namespace of references"),
    "createNamespaces": ("`true`", "create the operator and reference namespaces"),
    "protect": (
        "`false` (`true` in prod)",
        "protect the release, the namespaces, a managed identity and its role, every value written into "
        "Infisical and every synced resource; never the operator's login material "
        "(see [Operations](operations.md#protect-unprotect-and-the-login-material))",
    ),
    "kubeContext": (
        "the kubeconfig's current context; required when `floe:protect` is true (prod: `floe-prod`)",
        "the kubeconfig context of the stack's cluster: every Kubernetes object goes through one explicit "
        "`kubernetes.Provider` with it, and `Pulumi.yaml` disables the default provider, so `pulumi up -s prod` "
        "never deploys to whatever context is current",
    ),
    "operatorClientId": (
        "required for type infisical with universal auth (not with `identities: managed`); refused with "
        "`operator.auth: kubernetes`",
        "the operator's Universal Auth identity: its client id",
    ),
    "operatorClientSecret": (
        "required with `floe:operatorClientId`",
        "the operator's Universal Auth identity: its client secret",
    ),
    "operatorIdentityId": (
        "required with `operator.auth: kubernetes` (not with `identities: managed`)",
        "the id (a UUID) of the identity the operator logs in as with Kubernetes Auth",
    ),
    "operatorSecretRotation": (
        "none",
        "`identities: managed`: a mark (like `2026-12`); a new one rotates the operator's client secret",
    ),
    "kubernetesHost": (
        "the kubeconfig's server",
        "`identities: managed` with Kubernetes Auth: the API server's URL as Infisical reaches it",
    ),
    "secretValues": ("none", "`{reference: {KEY: value}}` for `config: true` keys and for type k8s"),
    "passwords": (
        "none",
        "`random`: set by `floe secrets upgrade`; type k8s stacks with `generate:` keys need it",
    ),
    "rotations": (
        "none",
        "`{reference: {KEY: mark}}`: a new mark (like `2026-12`) gives that one `generate:` key a new value "
        "(see [Operations](operations.md#generated-values))",
    ),
}
"""floe:<key> -> (default, meaning); the set of keys must be the model's (``KNOWN_KEYS``)."""

WRITER_KEYS: dict[str, tuple[str, str]] = {
    "clientId": (
        "none",
        "the writer identity's client id, needed when type infisical has `generate:` or `config: true` keys "
        "(and the admin identity with `identities: managed`)",
    ),
    "clientSecret": ("none", "the writer identity's client secret"),
    "siteUrl": ("the manifest's `site_url`", "where the writer writes (see the precedence below)"),
}
"""infisical:<key> -> (default, meaning); the set of keys must be ``WRITER_ENV``'s."""


def _same_keys(documented: Mapping[str, object], known: Sequence[str], namespace: str) -> None:
    missing = [k for k in known if k not in documented]
    extra = [k for k in documented if k not in known]
    if missing or extra:
        raise ValueError(
            f"tools/gen_docs.py documents the {namespace}: keys of the model: "
            + "; ".join(
                [f"undocumented {namespace}:{k} (add it to the table in tools/gen_docs.py)" for k in missing]
                + [f"{namespace}:{k} is not a key of the model (remove it from tools/gen_docs.py)" for k in extra]
            )
        )


def stack_config_table(
    known: Sequence[str] = settings.KNOWN_KEYS, writer_env: Mapping[str, str] = settings.WRITER_ENV
) -> str:
    """The ``floe:`` and ``infisical:`` keys: key, kind, default, environment variable, meaning."""
    _same_keys(FLOE_KEYS, known, settings.NAMESPACE)
    _same_keys(WRITER_KEYS, list(writer_env), settings.WRITER_NAMESPACE)
    lines = [
        "| key | stored | default | environment variable | meaning |",
        "|---|---|---|---|---|",
    ]
    for key, (default, meaning) in FLOE_KEYS.items():
        stored = "secret" if key in settings.SECRET_KEYS else "object" if key in settings.OBJECT_KEYS else "value"
        lines.append(f"| `{settings.NAMESPACE}:{key}` | {stored} | {default} | — | {meaning} |")
    for key, (default, meaning) in WRITER_KEYS.items():
        secret = f"{settings.WRITER_NAMESPACE}:{key}" in settings.PLAINTEXT_FORBIDDEN
        stored = "secret" if secret else "value"
        lines.append(
            f"| `{settings.WRITER_NAMESPACE}:{key}` | {stored} | {default} | `{writer_env[key]}` | {meaning} |"
        )
    return "\n".join(lines)


# --- manifest fields ------------------------------------------------------------------------

RULES = {
    "dns_label": "a DNS-1123 label",
    "dns_name": "a DNS-1123 name",
    "folder_path": "a folder path (`/a/b`)",
    "env_var": "an environment-variable name",
    "slug": "an Infisical slug",
    "interval": "a duration (`30s`, `5m`, `1h`, `1d`, `1w`)",
    "url": "a URL",
    "site_url": "a URL without `/api`",
    "exact_version": "an exact version",
    "_cidr": "a CIDR",
}
"""What a validator function checks, by its name; a new one shows under its own name."""

MODELS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("plugins.secrets", manifest.SecretsPluginSettings),
    ("plugins.secrets.config", manifest.InfisicalSettings),
    ("plugins.secrets.config.operator", manifest.OperatorSettings),
    ("plugins.secrets.config.eso", manifest.EsoSettings),
    ("plugins.secrets.config.identity", manifest.ManagedIdentitySettings),
    ("secrets.<name>", manifest.SecretEntry),
    ("secrets.<name>.keys.<KEY>", manifest.KeySpec),
    ("secrets.<name>.keys.<KEY>.generate", manifest.Generate),
)
"""Where each model sits in manifest.yaml; ``options`` (another plugin's raw config) is internal."""
INTERNAL_FIELDS = {("plugins.secrets", "options")}


def _constraints(metadata: Sequence[object]) -> list[str]:
    said = []
    for item in metadata:
        func = getattr(item, "func", None)
        if func is not None:
            said.append(RULES.get(func.__name__, func.__name__))
        for attr, word in (
            ("ge", "at least"),
            ("le", "at most"),
            ("min_length", "length at least"),
            ("max_length", "length at most"),
        ):
            if (value := getattr(item, attr, None)) is not None:
                said.append(f"{word} {value}")
        if (pattern := getattr(item, "pattern", None)) is not None:
            said.append(f"matching `{pattern}`")
    return said


def type_words(annotation: object) -> str:
    """A field's type, in words (no ``|``, which would split a table cell)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        rules = _constraints(annotation.__metadata__)  # type: ignore[attr-defined]
        base = type_words(args[0])
        return f"{base}: {', '.join(rules)}" if rules else base
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        shown = [type_words(a) for a in args if a is not type(None)]
        return " or ".join(shown) + (", or none" if type(None) in args else "")
    if origin is dict:
        return f"mapping of {type_words(args[0])} to {type_words(args[1])}"
    if origin is list:
        return f"list of {type_words(args[0])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (its fields below)"
    words: dict[object, str] = {str: "string", int: "integer", bool: "boolean", Any: "anything"}
    return words.get(annotation) or str(getattr(annotation, "__name__", annotation))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is PydanticUndefined:
        return "computed"
    if isinstance(value, BaseModel):
        return "its defaults"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict) and not value:
        return "`[]`" if isinstance(value, list) else "`{}`"
    return f"`{value}`"


def manifest_fields_table(models: Sequence[tuple[str, type[BaseModel]]] = MODELS) -> str:
    """Every field of every model, by its path in manifest.yaml."""
    lines = ["| field | type | default |", "|---|---|---|"]
    for where, model in models:
        for name, info in model.model_fields.items():
            if (where, name) in INTERNAL_FIELDS:
                continue
            rules = _constraints(info.metadata)
            shown = type_words(info.annotation) + (f": {', '.join(rules)}" if rules else "")
            lines.append(f"| `{where}.{name}` | {shown} | {_default(info)} |")
    return "\n".join(lines)


# --- the CLI --------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or not action.option_strings:
            continue
        if isinstance(action, argparse._HelpAction):
            continue
        takes = action.nargs != 0
        metavar = action.metavar or (action.dest.upper() if takes else "")
        if action.choices is not None:
            metavar = "|".join(str(c) for c in action.choices)
        flags = ", ".join(f"`{s}{' ' + str(metavar) if metavar else ''}`" for s in action.option_strings)
        flags = flags.replace("|", "\\|")
        default = "" if action.default in (None, False, argparse.SUPPRESS) or not takes else f"`{action.default}`"
        required = "yes" if action.required else ""
        text = (action.help or "").replace("|", "\\|").replace("%(prog)s", parser.prog)
        rows.append(f"| {flags} | {required} | {default} | {text} |")
    return rows


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """Every command under ``floe``, its description and a table of its options."""
    parser = parser or cli._parser()
    out = ["`floe` options: `--version` (prints the version), `-h`/`--help` (on every command)."]
    for group, group_help, group_parser in _subcommands(parser):
        out.append(f"\n`floe {group}`: {group_help}. {group_parser.description or ''}".rstrip())
        for _name, help_text, sub in _subcommands(group_parser):
            out.append(f"\n### `{sub.prog}`\n\n{help_text[:1].upper() + help_text[1:]}.")
            if sub.description:
                out.append(f"\n{sub.description}")
            out.append("\n| option | required | default | meaning |\n|---|---|---|---|")
            out.append("\n".join(_option_rows(sub)))
    return "\n".join(out)


# --- pages ----------------------------------------------------------------------------------

SECTIONS: dict[str, tuple[str, Callable[[], str]]] = {
    "stack-config": ("stack-config.md", stack_config_table),
    "manifest-fields": ("manifest.md", manifest_fields_table),
    "cli": ("cli.md", cli_reference),
}


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the lines between ``name``'s markers replaced by ``body``."""
    pattern = re.compile(
        rf"(<!-- generated:begin {re.escape(name)} -->\n).*?(<!-- generated:end {re.escape(name)} -->)", re.S
    )
    if not pattern.search(text):
        raise ValueError(f"no <!-- generated:begin {name} --> ... <!-- generated:end {name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def render(docs: Path = DOCS) -> dict[Path, str]:
    """Each page with generated sections, as it should read."""
    pages: dict[Path, str] = {}
    for name, (page, make) in SECTIONS.items():
        path = docs / page
        text = pages.get(path, path.read_text(encoding="utf-8"))
        pages[path] = replace_section(text, name, make())
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    args.add_argument("--check", action="store_true", help="only say which pages differ (exit 1 if any)")
    check = args.parse_args(argv).check
    stale = []
    for path, text in render().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{path}: {'out of date: run python tools/gen_docs.py' if check else 'rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
