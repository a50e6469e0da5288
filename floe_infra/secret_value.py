"""Where every stack's state finds the pickled provider: ``floe_infra.secret_value.InfisicalSecretValueProvider``.

Pulumi stores a dynamic provider in the state, pickled by module path, and unpickles it for every
refresh, update and destroy. The class lives in :mod:`floe_infra.deploy.secret_value`, but is
pickled under this path, which must never change.
"""

from .deploy.secret_value import InfisicalSecretValue, InfisicalSecretValueProvider

__all__ = ["InfisicalSecretValue", "InfisicalSecretValueProvider"]
