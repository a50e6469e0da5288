"""Clients of the systems floe talks to: Infisical (over infisicalsdk, with timeouts, retries and
re-login) and the Kubernetes API. Used by :mod:`floe_infra.deploy` and :mod:`floe_infra.day2`;
they import neither, nor the plan.
"""
