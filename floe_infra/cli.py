"""The ``floe`` command. It parses arguments and delegates; it never imports pulumi."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .build import build_plan, secret_config_problems
from .errors import FloeError
from .manifest import load_manifest
from .render import as_json, table, write_objects
from .stack import read_stack_files

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floe", description="floe platform tooling.")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    secrets = groups.add_parser("secrets", help="secrets management (Infisical operator or Kubernetes Secrets)")
    commands = secrets.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    plan = commands.add_parser(
        "plan",
        help="show offline what `pulumi preview` would create for a stack",
        description="Read Pulumi.yaml, Pulumi.<STACK>.yaml and the manifest from the current directory and "
        "print every resource the stack would have. Needs no cluster, no credentials and no Pulumi CLI; "
        "encrypted config is never decrypted.",
    )
    plan.add_argument("--stack", required=True, help="stack name, as in Pulumi.<STACK>.yaml")
    plan.add_argument("--manifest", type=Path, help="manifest path (default: floe:manifest, else manifest.yaml)")
    plan.add_argument("--out", type=Path, metavar="DIR", help="also write every Kubernetes object as YAML under DIR")
    plan.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _plan(args: argparse.Namespace) -> int:
    project_dir = Path.cwd()
    settings = read_stack_files(project_dir, args.stack)
    manifest_path = args.manifest if args.manifest is not None else project_dir / settings.manifest
    plan = build_plan(load_manifest(manifest_path), settings)
    warnings = [f"`pulumi up` would stop: {p}" for p in secret_config_problems(plan)]
    sys.stdout.write(as_json(plan, warnings) if args.format == "json" else table(plan))
    if args.out is not None:
        files = write_objects(plan, args.out)
        print(f"wrote {len(files)} objects to {args.out}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _plan(args)
    except FloeError as exc:
        print(f"floe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
