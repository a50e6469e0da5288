"""Pulumi entry point: all logic lives in floe_infra (see floe_infra/program.py)."""

from floe_infra.program import run

run()
