"""A registry: classes declared once under their ``name``, looked up by it, and every
name listed for the schema, the variant names and the help."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """name -> an instance of each registered class, in registration order."""

    def __init__(self, what: str, error: type[ValueError]) -> None:
        super().__init__()
        self.what, self.error = what, error

    def register(self, cls: type[T]) -> type[T]:
        """Declare ``cls`` under its ``name`` (usable as a class decorator)."""
        self[cls.name] = cls()  # type: ignore[attr-defined]
        return cls

    def lookup(self, name: str) -> T:
        """The entry ``name``; ``error`` naming every registered one otherwise."""
        try:
            return self[name]
        except KeyError:
            raise self.error(f"{self.what} {name!r} is not one of {', '.join(self)}") from None
