"""Pulumi entry point: all logic lives in floe_infra (see floe_infra/deploy/program.py)."""

import sys

import pulumi

if pulumi.runtime.get_root_resource() is None:  # the engine runs programs inside their stack
    sys.exit("this is a Pulumi program: run it with `pulumi preview` or `pulumi up` (offline: `floe secrets plan`)")

from floe_infra.deploy.program import run

run()
