"""Infisical's answers, classified in one place: what a refusal means (:func:`classify`), and the
errors a user sees (:class:`InfisicalError`, whose message says what to do and holds no secret)."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from ..errors import FloeError

if TYPE_CHECKING:
    from infisical_sdk.infisical_requests import APIError


class InfisicalError(FloeError):
    """Infisical refused or failed a request; the message says what to do and holds no secret."""


PULUMI_ADVICE = "Pulumi keeps only what succeeded, so run the same command again once Infisical answers"


class Refused(Exception):
    """Infisical answered a request with a definite no. The subclass says which; callers decide
    what it means for their operation (a delete that finds nothing is done, a read that finds
    nothing is drift) and word the user's message. Raised by :meth:`Connection.call` only."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{status} {kind or 'error'}: {message}")
        self.status, self.kind, self.message = status, kind, message


class NotFound(Refused):
    """404: a secret, a project, or the folder or environment (``folder_missing``)."""

    @property
    def folder_missing(self) -> bool:
        return "Folder not found" in self.message

    @property
    def key_missing(self) -> bool:
        """The secret itself is not there (its folder, environment and project are)."""
        return not self.folder_missing


class ProjectNotFound(NotFound):
    """404: the project does not exist (any more), or not in the identity's organisation. Said by
    ``GET /api/v1/projects/slug/{slug}`` ("Project with slug '...' not found") and by every request
    that names the project by id ("Project not found during bot lookup..."). A project that exists
    but that the identity is no member of is a 403, not this."""

    @property
    def key_missing(self) -> bool:
        return False


PROJECT_NOT_FOUND = re.compile(r"Project with slug '.*' not found|Project not found during bot lookup\b.*", re.DOTALL)
"""The 404 messages of a project that is not there. A 404 for a route the server lacks (an older
server without ``/api/v1/projects/slug``) says ``Route GET:... not found``: not this."""


class AlreadyExists(Refused):
    """400: a secret of that name is already in that folder."""


class TokenExpired(Refused):
    """The access token is no longer good; a new login fixes it. 403 TokenError: past the identity's
    accessTokenMaxTTL (the JWT's exp), or malformed. 401 UnauthorizedError with one of
    :data:`TOKEN_GONE`: past its accessTokenTTL (the server deletes it on that first use), or
    deleted already."""


TOKEN_GONE = frozenset(
    {
        "Failed to renew MI access token due to TTL expiration",  # the first use past accessTokenTTL
        "No identity access token found",  # every later use: the server deleted the token
    }
)
"""The 401 messages (identity-access-token-service.ts) that mean the token is no longer good. Any
other 401 is not: a wrong client secret, a request body the server's validation refused."""


class PermissionDenied(Refused):
    """403 PermissionDenied: the identity's role does not allow the action."""


@cache
def api_error() -> type[APIError]:
    """The SDK's error class, imported on first use: the SDK (and boto3, which it imports) is a
    tenth of a second that a program whose secrets all come from config, or a preview, need not
    pay."""
    from infisical_sdk.infisical_requests import APIError

    error: type[APIError] = APIError
    return error


def classify(exc: APIError) -> Refused:
    """The one reading of an SDK error: Infisical's status, ``error`` field and message (the
    message, not the status, tells a missing folder from a missing secret, or a duplicate key)."""
    body = exc.response if isinstance(exc.response, dict) else {}
    kind = str(body.get("error", ""))
    message = body.get("message", "")
    if isinstance(message, list):  # zod validation issues
        message = "; ".join(f"{'.'.join(map(str, m.get('path', [])))}: {m.get('message')}" for m in message)
    status = int(exc.status_code or 0)
    if status == 404 and PROJECT_NOT_FOUND.fullmatch(str(message)):
        return ProjectNotFound(status, kind, str(message))
    if status == 404:
        return NotFound(status, kind, str(message))
    if status == 400 and "already exist" in str(message):
        return AlreadyExists(status, kind, str(message))
    if status == 403 and kind == "TokenError":
        return TokenExpired(status, kind, str(message))
    if status == 401 and kind == "UnauthorizedError" and str(message) in TOKEN_GONE:
        return TokenExpired(status, kind, str(message))
    if status == 403 and kind == "PermissionDenied":
        return PermissionDenied(status, kind, str(message))
    return Refused(status, kind, str(message))


PROJECT_SLUG_ADVICE = "check the project slug (plugins.secrets.config.project_slug in the manifest)"


class ProjectGone(InfisicalError):
    """:meth:`Connection.project_id` found no project of that slug: Infisical said so, at once
    (never an outage to wait out). A delete or a refresh takes it as "gone with the project"."""

    def __init__(self, host: str, slug: str, refused: ProjectNotFound) -> None:
        super().__init__(f"Infisical at {host} has no project {slug} ({refused}); {PROJECT_SLUG_ADVICE}")
        self.slug, self.refused = slug, refused
