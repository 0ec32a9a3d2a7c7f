"""Optional field sugar and reference declarations.

``Field`` is a descriptor that contributes to the same class settings
(``structure``, ``validators``, ``defaults``, ``labels``) that can be written
by hand, so both styles mix freely::

    class Person(Document):
        name = Field(str, required=True, label="Full name")
        structure = {"age": int}

``Many(Country)`` declares a list of references.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from doqu import validators as v

if TYPE_CHECKING:
    from doqu.document import Document

__all__ = ["Field", "Many"]


class Many:
    """A list of references to documents of one class (stored as a list of keys)."""

    def __init__(self, target: type["Document"] | str) -> None:
        self.target = target

    def __repr__(self) -> str:
        name = self.target if isinstance(self.target, str) else self.target.__name__
        return f"Many({name})"


class Field:
    """Declares one field; attribute access on documents reads and writes it."""

    def __init__(self, datatype: Any = None, required: bool = False, essential: bool = False,
                 default: Any = None, choices: Iterable[Any] | None = None,
                 label: str | None = None, pickled: bool = False,
                 validators: Iterable[Any] = ()) -> None:
        self.datatype = datatype
        self.required = required
        self.essential = essential
        self.default = default
        self.choices = list(choices) if choices is not None else None
        self.label = label
        self.pickled = pickled
        self.extra_validators = list(validators)
        self.name: str | None = None

    def contribute(self, name: str) -> dict[str, Any]:
        """The settings this field adds to its class, by setting name."""
        self.name = name
        chain: list[Any] = []
        if self.required:
            chain.append(v.Required())
        if self.choices is not None:
            if not self.required:
                chain.append(v.Optional())
            chain.append(v.AnyOf(self.choices))
        chain.extend(self.extra_validators)
        out: dict[str, Any] = {"structure": {name: self.datatype}}
        if chain:
            out["validators"] = {name: chain}
        if self.default is not None:
            out["defaults"] = {name: self.default}
        if self.label is not None:
            out["labels"] = {name: self.label}
        return out

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance[self.name]

    def __set__(self, instance: Any, value: Any) -> None:
        instance[self.name] = value

    def __delete__(self, instance: Any) -> None:
        instance[self.name] = None

    def __repr__(self) -> str:
        return f"Field({getattr(self.datatype, '__name__', self.datatype)!s}, name={self.name!r})"
