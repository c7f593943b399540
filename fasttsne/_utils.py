"""Small shared helpers: the verbose printer of the estimators."""

from fasttsne._progress import Reporter as _Printer

__all__ = ["_Printer"]
