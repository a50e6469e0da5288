"""Where every stack's state finds the pickled providers of managed identities
(``floe_infra.identities.*Provider``). They live in :mod:`floe_infra.deploy.identities`, but are
pickled under this path, which must never change."""

from .deploy.identities import ClientSecretProvider, MachineIdentityProvider, OperatorLoginProvider, ProjectRoleProvider

__all__ = ["ClientSecretProvider", "MachineIdentityProvider", "OperatorLoginProvider", "ProjectRoleProvider"]
