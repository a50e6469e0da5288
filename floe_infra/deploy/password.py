"""``GeneratedPassword``: a random value made once by the engine and kept, secret, in the state.

What ``random.RandomPassword`` does for ``generate:`` keys, as a dynamic provider of a few lines, so
a stack needs no plugin but the Kubernetes provider. The value is drawn with :mod:`secrets` in
``create`` and never again: it changes only when ``length`` or ``special`` change (a replace).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ResourceProvider

SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
_SPEC = ("length", "special")


class GeneratedPasswordProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        length = news.get("length")
        failures = []
        # The engine sends every number as a float (a protobuf Struct): 32 arrives as 32.0.
        if isinstance(length, float) and length.is_integer():
            length = int(length)
        if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= 4096:
            failures.append(CheckFailure("length", f"length must be a whole number from 1 to 4096, found {length!r}"))
        if not isinstance(news.get("special"), bool):
            failures.append(CheckFailure("special", "special must be true or false"))
        return CheckResult({"length": length, "special": news.get("special")}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in _SPEC if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        alphabet = string.ascii_letters + string.digits + (SPECIAL if props["special"] else "")
        result = "".join(secrets.choice(alphabet) for _ in range(int(props["length"])))
        return CreateResult(secrets.token_hex(8), {**props, "result": result})


# Pickled into every stack's state under this path (a module of its own, which re-exports it).
GeneratedPasswordProvider.__module__ = "floe_infra.password"


class GeneratedPassword(pulumi.dynamic.Resource, module="floe", name="GeneratedPassword"):
    """``result`` is ``length`` characters of letters and digits (and ``SPECIAL`` if ``special``)."""

    result: pulumi.Output[str]

    def __init__(
        self, name: str, length: int, special: bool = True, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=["result"])
        super().__init__(
            GeneratedPasswordProvider(),
            name,
            {"length": length, "special": special, "result": None},
            pulumi.ResourceOptions.merge(opts, secret_opts),
        )
