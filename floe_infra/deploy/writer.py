"""The base of every dynamic provider that writes to Infisical (values, identities, roles): it
talks as the identity Pulumi runs with (``infisical:*`` stack config, else the environment), and
keeps those credentials outside the instance, which Pulumi pickles into the state. Also the
reading of what the engine sends a dynamic provider (secrets wrapped, unknowns in a preview)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import pulumi
from pulumi.dynamic import ConfigureRequest, ResourceProvider
from pulumi.output import Unknown
from pulumi.runtime import rpc

from ..clients.auth import Credentials
from ..clients.errors import InfisicalError

# Credentials per configured provider instance, outside the instance so pickling cannot reach them.
_CREDENTIALS: weakref.WeakKeyDictionary[WriterProvider, Credentials | InfisicalError] = weakref.WeakKeyDictionary()


class WriterProvider(ResourceProvider):
    """A provider that talks to Infisical as the identity Pulumi runs with (``infisical:*`` config,
    else the environment). Its credentials are kept outside the instance, which Pulumi pickles."""

    site_url: str | None

    def configure(self, req: ConfigureRequest) -> None:
        # Missing credentials fail the first request, not configure: a preview makes none.
        try:
            _CREDENTIALS[self] = Credentials.resolve(req.config.get, self.site_url)
        except InfisicalError as exc:
            _CREDENTIALS[self] = exc

    def _credentials(self) -> Credentials:
        credentials = _CREDENTIALS.get(self)
        if credentials is None:  # not configured by an engine: environment variables only
            credentials = _CREDENTIALS[self] = Credentials.resolve(lambda _: None, self.site_url)
        if isinstance(credentials, InfisicalError):
            raise credentials
        return credentials


def is_unknown(value: Any) -> bool:
    return bool(value == rpc.UNKNOWN)


def plain_value(value: Any) -> Any:
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        # The SDK's deserializer turns a secret unknown into a secret None: nobody sends that.
        return rpc.UNKNOWN if inner is None else plain_value(inner)
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, pulumi.Output):
        loop = asyncio.new_event_loop()
        try:
            known = loop.run_until_complete(value.is_known())
            return plain_value(loop.run_until_complete(value.future())) if known else rpc.UNKNOWN
        finally:
            loop.close()
    return value


def plain_props(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` as plain values, unknowns as ``rpc.UNKNOWN``: the engine sends ``check`` and
    ``diff`` a secret wrapped, an unknown (a value from a resource not yet created, in preview)
    as ``Unknown``, and either of them possibly as an output value."""
    return {name: plain_value(value) for name, value in props.items()}
