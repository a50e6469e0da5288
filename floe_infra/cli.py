"""The ``floe`` command. It parses arguments and delegates; it never imports pulumi.

The day-2 commands (validate, list, status) and the clients they need load on use, so
``floe --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import FloeError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--stack", required=True, help="stack name, as in Pulumi.<STACK>.yaml")
    command.add_argument("--manifest", type=Path, help="manifest path (default: floe:manifest, else manifest.yaml)")
    command.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table for people (the default), json for scripts",
    )


def _cluster(command: argparse.ArgumentParser, *, namespaces: bool) -> None:
    command.add_argument("--context", help="kubeconfig context (default: the current one)")
    if namespaces:
        scope = command.add_mutually_exclusive_group()
        scope.add_argument("--namespace", "-n", help="only this namespace")
        scope.add_argument("--all-namespaces", "-A", action="store_true", help="every namespace (the default)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("floe-infra")
    except PackageNotFoundError:
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="floe", description="floe platform tooling.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    secrets = groups.add_parser(
        "secrets",
        help="secrets management (Infisical operator or Kubernetes Secrets)",
        description="Exit codes: 0 all good, 1 a check found a problem, 2 bad usage or input.",
    )
    commands = secrets.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    plan = commands.add_parser(
        "plan",
        help="show offline what `pulumi preview` would create for a stack",
        description="Read Pulumi.yaml, Pulumi.<STACK>.yaml and the manifest from the current directory and "
        "print every resource the stack would have. Needs no cluster, no credentials and no Pulumi CLI; "
        "encrypted config is never decrypted.",
    )
    _common(plan)
    plan.add_argument("--out", type=Path, metavar="DIR", help="also write every Kubernetes object as YAML under DIR")
    validate = commands.add_parser(
        "validate",
        help="check that every secret reference exists in its backend with its declared keys",
        description="Ask the secrets backend (Infisical: one list per folder, values not requested; k8s: the "
        "Secrets) whether each reference's secrets exist and hold every key declared under keys:. Infisical "
        "credentials: INFISICAL_UNIVERSAL_AUTH_CLIENT_ID and INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET; host: the "
        "manifest's site_url, or INFISICAL_HOST.",
    )
    _common(validate)
    _cluster(validate, namespaces=False)
    validate.add_argument(
        "--pre-deploy",
        action="store_true",
        help="before `pulumi up`: keys the stack writes itself (generate:, config: true) may be missing",
    )
    listing = commands.add_parser(
        "list",
        help="the stack's synced resources in the cluster and their sync status",
        description="Synced, Failed: <reason>, Pending (not reconciled yet), or Missing (in the manifest, not in "
        "the cluster). Cluster access: KUBECONFIG, ~/.kube/config or in-cluster config.",
    )
    _common(listing)
    _cluster(listing, namespaces=True)
    status = commands.add_parser(
        "status",
        help="when each reference last synced, and why not when it did not",
        description="LAST SYNC is the last time the operator wrote the resource's status (it records no "
        "per-sync time).",
    )
    _common(status)
    _cluster(status, namespaces=True)
    upgrade = commands.add_parser(
        "upgrade",
        help="move a stack's state from an earlier release to this one, keeping every value",
        description="Run once per stack after upgrading floe-infra, before `pulumi up`: each generate: value "
        "made by GeneratedPassword (releases before random.RandomPassword) becomes a RandomPassword with the "
        "same value (`pulumi import`), then floe:passwords is set to random (type k8s needs it; on a new stack "
        "that is all it does). Needs the pulumi CLI, logged in to the stack's backend, run from the project "
        "directory. Running it again moves nothing.",
    )
    upgrade.add_argument("--stack", required=True, help="stack name, as in Pulumi.<STACK>.yaml")
    return parser


def _plan(args: argparse.Namespace) -> int:
    from .model.manifest import load_manifest
    from .model.settings import read_stack_files
    from .plan.planner import build_plan, deploy_config_problems
    from .plan.render import as_json, table, write_objects

    project_dir = Path.cwd()
    settings = read_stack_files(project_dir, args.stack)
    manifest_path = args.manifest if args.manifest is not None else project_dir / settings.manifest
    plan = build_plan(load_manifest(manifest_path), settings)
    warnings = [*plan.warnings, *(f"`pulumi up` would stop: {p}" for p in deploy_config_problems(plan))]
    sys.stdout.write(as_json(plan, warnings) if args.format == "json" else table(plan))
    if args.out is not None:
        files = write_objects(plan, args.out)
        print(f"wrote {len(files)} objects to {args.out}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _day2(args: argparse.Namespace) -> int:
    from .day2 import commands as day2

    stack = day2.open_target(
        Path.cwd(),
        args.stack,
        args.manifest and str(args.manifest),
        args.context,
        read_budget=args.command == "validate",
    )
    namespace = getattr(args, "namespace", None)
    if args.command == "validate":
        report = day2.validate(stack, pre_deploy=args.pre_deploy)
        if stack.read_budget:
            print(f"warning: {stack.read_budget}", file=sys.stderr)
    elif args.command == "list":
        report = day2.list_resources(stack, namespace)
    else:
        report = day2.status(stack, namespace)
    day2.render(report, args.format)
    return report.exit_code


def _upgrade(args: argparse.Namespace) -> int:
    from .day2.upgrade import upgrade

    report = upgrade(Path.cwd(), args.stack)
    if report.moved:
        print(
            f"moved {len(report.moved)} generated value(s) into RandomPassword, each unchanged: "
            f"{', '.join(report.moved)}"
        )
        print(f"next: `pulumi up --stack {args.stack}` (no value changes; it deletes the GeneratedPassword entries)")
    else:
        print(
            f"stack {args.stack}: nothing to upgrade"
            + (f" ({len(report.already)} value(s) moved before)" if report.already else "")
            + "; floe:passwords is random"
        )
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "upgrade": _upgrade,
    "plan": _plan,
    "validate": _day2,
    "list": _day2,
    "status": _day2,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except FloeError as exc:
        print(f"floe: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:
    """Console-script entry point; Ctrl-C ends any command with 130, as shells expect."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("floe: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
