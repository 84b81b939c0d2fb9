"""Domain errors. Every error says what was wrong and where; no web or CLI imports here."""

from __future__ import annotations


class StreamrecError(Exception):
    """Base of every error streamrec raises on purpose."""


class ConfigError(StreamrecError):
    """A setting, flag or config file is wrong."""


class DataError(StreamrecError):
    """Input data cannot be used as a whole (missing columns, unreadable file, empty data)."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


class ValidationError(StreamrecError):
    """One field of one row is invalid."""

    def __init__(self, source: str, row: int | None, field: str, reason: str):
        where = f"{source}:{row}" if row is not None else source
        super().__init__(f"{where}: field '{field}': {reason}")
        self.source, self.row, self.field, self.reason = source, row, field, reason


class NotFound(StreamrecError):
    """A named thing (user, title, model, file, data set) does not exist."""

    def __init__(self, kind: str, name: str, hint: str = ""):
        super().__init__(f"{kind} '{name}' not found" + (f": {hint}" if hint else ""))
        self.kind, self.name = kind, name


class BackendError(StreamrecError):
    """A storage or compute backend failed (disk full, server down, corrupt file)."""


class Unavailable(BackendError):
    """A server cannot be reached (stopped, restarting, unreachable): the same call may work once it is back."""


class ChecksumError(BackendError):
    """A file's checksum does not match the expected one."""

    def __init__(self, path: str, expected: str, actual: str):
        super().__init__(f"{path}: checksum mismatch (expected {expected}, got {actual})")
        self.path, self.expected, self.actual = path, expected, actual
