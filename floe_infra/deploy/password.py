"""``GeneratedPasswordProvider``: what made ``generate:`` values before ``random.RandomPassword``.

Every state made by those releases holds this provider pickled (as
``floe_infra.password.GeneratedPasswordProvider``) beside each password, and the engine loads it to
delete them once ``floe secrets upgrade`` has moved each value into a RandomPassword. It needs no
operation of its own: a delete is a no-op (the value lives on, in Infisical and in the
RandomPassword), and a refresh reads back what the state holds. It makes no value any more.
"""

from __future__ import annotations

from pulumi.dynamic import ResourceProvider


class GeneratedPasswordProvider(ResourceProvider):
    """Kept so that states made before RandomPassword can be refreshed and their passwords deleted."""


# Pickled into every such state under this path (a module of its own, which re-exports it).
GeneratedPasswordProvider.__module__ = "floe_infra.password"
