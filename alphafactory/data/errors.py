"""Errors of the data layer.

Hierarchy (every class is a ``ValueError``, so callers that already catch bad input keep
working)::

    DataError
    ├── UnsupportedFormatError   file suffix is neither .parquet/.pq nor .csv
    ├── EmptyFileError           no bytes, or a header and no rows
    ├── MissingColumnError       no `date`/`asset`, or neither `returns` nor `close`
    ├── DuplicateRowError        the same (date, asset) twice
    ├── NonNumericError          a field column holds text that is not a number
    ├── DateParseError           a `date` cell that is not a date
    ├── UnsortedDatesError       rows not in ascending date order
    ├── InconsistentMacroError   a macro column differs between assets on one date
    └── AvailabilityError        an `available_at` cell without a zone, before its date or
                                 after now

Each message names the file, the column or row, the offending value and what was expected.
"""

from __future__ import annotations


class DataError(ValueError):
    """Root of every error raised while reading, writing or generating market data."""


class UnsupportedFormatError(DataError):
    pass


class EmptyFileError(DataError):
    pass


class MissingColumnError(DataError):
    pass


class DuplicateRowError(DataError):
    pass


class NonNumericError(DataError):
    pass


class DateParseError(DataError):
    pass


class UnsortedDatesError(DataError):
    pass


class InconsistentMacroError(DataError):
    pass


class AvailabilityError(DataError):
    pass
