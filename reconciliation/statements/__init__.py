"""Statement files from payment providers, banks and channels, parsed to neutral rows.

Pure Python (no models, no database): `open_statement(data)` detects the container, encoding and
profile and returns a StatementReader whose rows() yields StatementRow or RowError per line.
"""

from .model import PROFILES, RowError, StatementFormatError, StatementRow
from .reader import StatementReader, open_statement

__all__ = [
    "PROFILES",
    "RowError",
    "StatementFormatError",
    "StatementReader",
    "StatementRow",
    "open_statement",
]
