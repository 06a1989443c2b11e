"""Tiny registries that map versioned names (``biomedclip.v1``) to factories.

One :class:`Registry` per kind: :data:`embedders` and :data:`classifiers` (density models).
Registering a name twice is an error; an unknown name raises an error that lists the
available names. Subpackages register their implementations when they are
imported; the registries themselves import nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from mammosearch.errors import RegistryError

__all__ = ["Registry", "classifiers", "embedders"]

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.v\d+$")


class Registry(Generic[F]):
    """A name → factory mapping for one kind of component.

    Args:
        kind: What is registered, for error messages (``"embedder"``).

    Example:
        >>> reg: Registry[Callable[..., int]] = Registry("widget")
        >>> @reg.register("answer.v1")
        ... def make() -> int:
        ...     return 42
        >>> reg.create("answer.v1")
        42
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that registers a factory under a versioned name such as ``x.v1``.

        Raises:
            RegistryError: The name is malformed or already registered.
        """
        if not _NAME.match(name):
            raise RegistryError(
                f"{self.kind} name {name!r} is not a versioned name",
                fix="use lower-case words ending in a version, such as 'biomedclip.v1'",
            )

        def decorator(factory: F) -> F:
            if name in self._factories:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered",
                    fix="register a new version (for example '.v2') instead of replacing it",
                )
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> F:
        """The factory registered under ``name``.

        Raises:
            RegistryError: No such name; the message lists the available names.
        """
        try:
            return self._factories[name]
        except KeyError:
            available = ", ".join(sorted(self._factories)) or "none registered"
            raise RegistryError(
                f"unknown {self.kind} {name!r}", fix=f"use one of: {available}"
            ) from None

    def create(self, name: str, /, **overrides: Any) -> Any:
        """Call the factory registered under ``name`` with ``overrides``."""
        return self.get(name)(**overrides)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories


embedders: Registry[Callable[..., Any]] = Registry("embedder")
classifiers: Registry[Callable[..., Any]] = Registry("classifier")
