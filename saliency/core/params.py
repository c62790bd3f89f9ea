"""Protocol parameters, declared once per method function: name, default and valid values.

`@protocol("LA", Param("max_iter", 20, COUNT), ...)` above a method function is the only place
its protocol parameters are written: the function's signature names them without defaults, the
decorator fills the declared defaults in and checks every call's values against the declared
ranges, so `attribute(...)` and a direct call raise the same SaliencyError before any model work.
"""
from __future__ import annotations

import functools
import inspect
import numbers
from dataclasses import dataclass
from typing import Callable

from ..errors import SaliencyError


@dataclass(frozen=True)
class Range:
    """The valid values of one numeric parameter: low < v (open) or low <= v, v <= high; integer."""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    integer: bool = False

    def bounds(self) -> str:
        parts = [f"> {self.low:g}" if self.open_low else f">= {self.low:g}"] if self.low is not None else []
        return " and ".join(parts + ([f"<= {self.high:g}"] if self.high is not None else []))

    def holds(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
            return False
        if self.integer and int(value) != value:
            return False
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        return not too_low and not (self.high is not None and value > self.high)

    def check(self, value) -> str | None:
        """None if `value` is valid, else what it must be."""
        return None if self.holds(value) else f"{'an integer' if self.integer else 'a number'} {self.bounds()}".strip()


@dataclass(frozen=True)
class NonEmptyList:
    """A non-empty list or tuple whose every item lies in `item`."""
    item: Range

    def check(self, value) -> str | None:
        if isinstance(value, (tuple, list)) and value and all(self.item.holds(v) for v in value):
            return None
        return f"a non-empty list of {'integers' if self.item.integer else 'numbers'} {self.item.bounds()}".strip()


POSITIVE, COUNT, STEPS = Range(0, open_low=True), Range(1, integer=True), Range(2, integer=True)
FRACTION = Range(0, 1)


@dataclass(frozen=True)
class Param:
    """One protocol parameter: its default (the published value) and its valid values."""
    name: str
    default: object
    valid: Range | NonEmptyList | None = None


@dataclass(frozen=True)
class Protocol:
    """A method's display name (its error messages, table columns and figure titles) and its
    protocol parameters, in order."""
    display: str
    params: tuple[Param, ...]

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def check(self, values: dict):
        """SaliencyError naming the first declared parameter in `values` outside its range."""
        for param in self.params:
            if param.name in values and param.valid is not None:
                problem = param.valid.check(values[param.name])
                if problem:
                    raise SaliencyError(f"{self.display}'s {param.name} must be {problem}, "
                                        f"got {values[param.name]!r}")


def protocol(display: str, *params: Param) -> Callable:
    """Decorator: `function` takes `params` as keyword-only arguments without defaults; calls get
    the declared defaults for those not given and are checked against the declared ranges.
    The wrapper's signature shows the defaults; `.protocol` holds the declaration."""
    declared = Protocol(display, tuple(params))

    def decorate(function):
        signature = _declared_signature(function, declared)

        @functools.wraps(function)
        def checked(*args, **kwargs):
            values = {**declared.defaults, **kwargs}
            declared.check(values)
            return function(*args, **values)

        checked.__signature__ = signature
        checked.protocol = declared
        return checked

    return decorate


def _declared_signature(function, declared: Protocol) -> inspect.Signature:
    """`function`'s signature with the declared defaults filled in; TypeError (at import) unless
    the declared names are exactly its keyword-only parameters without a default."""
    signature = inspect.signature(function)
    required = [p.name for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if required != [p.name for p in declared.params]:
        raise TypeError(f"{function.__name__}: declared parameters {[p.name for p in declared.params]} must be its "
                        f"keyword-only parameters without defaults, in order; it has {required}")
    defaults = declared.defaults
    return signature.replace(parameters=[p.replace(default=defaults[p.name]) if p.name in defaults else p
                                         for p in signature.parameters.values()])
