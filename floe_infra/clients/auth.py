"""The writer identity's credentials and host: ``infisical:*`` stack config, else the
environment variables Infisical's own CLI and Terraform provider read."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..model import names
from ..model.settings import WRITER_ENV
from .errors import InfisicalError

HOST_ENV, CLIENT_ID_ENV, CLIENT_SECRET_ENV = WRITER_ENV["siteUrl"], WRITER_ENV["clientId"], WRITER_ENV["clientSecret"]


@dataclass(frozen=True)
class Credentials:
    """The writer machine identity (Universal Auth). ``repr`` never shows the secret."""

    host: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def resolve(cls, config: Callable[[str], Any], default_host: str | None = None) -> Credentials:
        """From ``infisical:*`` stack config, else the environment Infisical's own tools read."""
        host, source = _writer_host_and_source(config, default_host)
        if host is not None:
            try:
                names.url(host)
            except ValueError as exc:
                raise InfisicalError(f"the Infisical host ({source}) {exc}") from None
        client_id = config("infisical:clientId") or os.environ.get(CLIENT_ID_ENV)
        client_secret = config("infisical:clientSecret") or os.environ.get(CLIENT_SECRET_ENV)
        wanted = (
            (host, "`pulumi config set infisical:siteUrl https://...`", HOST_ENV),
            (client_id, "`pulumi config set infisical:clientId <client-id>`", CLIENT_ID_ENV),
            (client_secret, "`pulumi config set --secret infisical:clientSecret <secret>`", CLIENT_SECRET_ENV),
        )
        missing = [f"{command} (or {env})" for value, command, env in wanted if not value]
        if missing:
            raise InfisicalError("no Infisical machine identity to use: set " + " and ".join(missing))
        return cls(str(host), str(client_id), str(client_secret))


def writer_host(config: Callable[[str], Any], default_host: str | None) -> str | None:
    """Where the writer writes: ``infisical:siteUrl``, else INFISICAL_HOST, else ``default_host``
    (the manifest's site_url)."""
    return _writer_host_and_source(config, default_host)[0]


def _writer_host_and_source(config: Callable[[str], Any], default_host: str | None) -> tuple[str | None, str]:
    """The writer's host, and which setting gave it (for messages)."""
    for value, source in (
        (config("infisical:siteUrl"), "infisical:siteUrl"),
        (os.environ.get(HOST_ENV), HOST_ENV),
        (default_host, "the manifest's site_url"),
    ):
        if value:
            return str(value).rstrip("/"), source
    return None, "the manifest's site_url"
