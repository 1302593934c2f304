"""Exceptions raised by cnnrs.

Every error subclasses :class:`CnnrsError` and also ``ValueError`` or
``TypeError``, so code that already catches those keeps working. Messages name
the op, the argument and the shapes involved.
"""


class CnnrsError(Exception):
    """Base class of every cnnrs error."""


class ShapeError(CnnrsError, ValueError):
    """Sizes that do not fit together (channels, groups, matrix dimensions, ...)."""


class ArgumentError(CnnrsError, ValueError):
    """A scalar argument out of range (zero stride, negative padding, empty batch, ...)."""


class DTypeError(CnnrsError, TypeError):
    """An array of the wrong element type, or not an array at all."""


class LayoutError(CnnrsError, ValueError):
    """An array that is not C-contiguous, read-only, or already borrowed (passed twice, or in use)."""


class SizeOverflowError(CnnrsError, ValueError):
    """Sizes whose product does not fit in memory or in the index types."""


__all__ = ["CnnrsError", "ShapeError", "ArgumentError", "DTypeError", "LayoutError", "SizeOverflowError"]
