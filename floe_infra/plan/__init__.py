"""Pure functions from (manifest, stack settings) to the desired objects of one stack.

The Pulumi program (:mod:`floe_infra.deploy`) and ``floe secrets plan`` both consume the plan, so
they cannot disagree. No Pulumi, no network, no secret values. Imports :mod:`floe_infra.model`.
"""
