"""Where states made before RandomPassword find their pickled provider:
``floe_infra.password.GeneratedPasswordProvider``.

The class lives in :mod:`floe_infra.deploy.password`, but is pickled under this path, which must
never change (see :mod:`floe_infra.secret_value`).
"""

from .deploy.password import GeneratedPasswordProvider

__all__ = ["GeneratedPasswordProvider"]
