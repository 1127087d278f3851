"""One variable, declared once: the field of a settings section that it sets.

``setting(...)`` is a dataclass field that carries its variable's name, parser and help text,
so a section's class is the whole declaration: its annotations give the typed access
(``settings.archive.min_age_s``), its defaults are the variables' defaults, and ``variables()``
reads the rest back for validation, ``Settings.replace`` and the README's table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_VARIABLE = "fusou.variable"
PREFIX = "FUSOU_"


@dataclass(frozen=True)
class Declared:
    env: str
    parse: Callable[[str], Any]
    help: str


def setting(
    env: str, default: T, parse: Callable[[str], T], help: str, *, secret: bool = False
) -> T:
    """A field set by the variable ``env``: parsed with ``parse`` (whose ValueError is the
    complaint about a bad value), ``default`` when unset. A secret stays out of ``repr``, hence
    out of logs and tracebacks."""
    if not env.startswith(PREFIX):
        raise ValueError(f"{env}: a variable's name starts with {PREFIX}")
    declared = Declared(env, parse, help)
    field: T = dataclasses.field(default=default, repr=not secret, metadata={_VARIABLE: declared})
    return field


@dataclass(frozen=True)
class Variable:
    """A variable as declared, and where its value lands: ``settings.<section>.<field>``."""

    env: str
    section: str
    field: str
    default: Any
    parse: Callable[[str], Any]
    help: str

    @property
    def key(self) -> str:
        """The variable's name without the prefix, in lower case: what ``Settings.replace``
        takes (FUSOU_ARCHIVE_MIN_AGE_S is ``archive_min_age_s``)."""
        return self.env[len(PREFIX) :].lower()


def variables(section: str, cls: type[Any]) -> Iterator[Variable]:
    """The variables of the section dataclass ``cls``, in declaration order."""
    for found in dataclasses.fields(cls):
        declared = found.metadata.get(_VARIABLE)
        if not isinstance(declared, Declared):
            raise TypeError(f"{cls.__name__}.{found.name} is not declared with setting()")
        yield Variable(
            declared.env, section, found.name, found.default, declared.parse, declared.help
        )
