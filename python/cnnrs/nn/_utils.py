"""Argument normalisation and validation shared by the layer constructors."""

from __future__ import annotations

import numbers


def check_int(module: str, name: str, value, minimum: int = 1) -> int:
    """value as an int >= minimum, else a ValueError that names the module and argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{module}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{module}: {name} must be >= {minimum}, got {value}")
    return int(value)


def tuple_arg(module: str, name: str, value, n: int, minimum: int = 1) -> tuple:
    """An int or a length-n sequence of ints, each >= minimum -> an n-tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{module}: {name} must be an int or a tuple of {n} ints, got {value!r}")
        return tuple(check_int(module, name, v, minimum) for v in value)
    return (check_int(module, name, value, minimum),) * n


def check_probability(module: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{module}: {name} has to be between 0 and 1, but got {value!r}")
    return float(value)
