"""The policy pack: `pulumi preview --policy-pack policy` serves these policies to the engine."""

from floe_policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="floe-secrets", policies=POLICIES)
