"""One small exception hierarchy; the CLI maps each class to an exit code a scheduler can act on."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.data.validate import ValidationResult


class PipelineError(Exception):
    """Base class: anything the pipeline reports on purpose."""

    exit_code = 1


class ConfigError(PipelineError):
    """The YAML config is missing, malformed, or holds a wrong key or value."""

    exit_code = 2


class DataContractError(PipelineError):
    """The input as a whole is unusable: unreadable, empty, a required column missing, all rows bad."""

    exit_code = 3
    result: ValidationResult | None = None  # set when all rows were rejected, so the rejects can still be written


class RejectionBudgetExceeded(PipelineError):
    """More rows failed validation than the configured budget allows."""

    exit_code = 4

    def __init__(self, message: str, result=None) -> None:
        super().__init__(message)
        self.result = result  # the ValidationResult, so the rejects can still be written


class ModelNotFoundError(PipelineError):
    """A model URI, name, version or alias does not resolve."""

    exit_code = 5


class TrackingError(PipelineError):
    """The MLflow tracking server or registry cannot be reached or refused an operation."""

    exit_code = 6


class StageInputMissing(PipelineError):
    """A stage was run before the stage that writes its input."""

    exit_code = 7


class StaleInput(StageInputMissing):
    """A stage's input was made from an older version of its own inputs, or by a run that failed."""


class ArtifactIntegrityError(PipelineError):
    """A file of a registered model differs from the sha256 recorded at registration: never unpickle it."""

    exit_code = 8


_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere or remount it read-write",
    errno.EACCES: "permission denied: check the owner and mode of the folder",
    errno.EPERM: "permission denied: check the owner and mode of the folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "the path is a folder, not a file",
    errno.ENAMETOOLONG: "the path is too long",
    errno.EIO: "the device reported an I/O error",
}
STORAGE_ERRNOS = frozenset({*_HINTS, errno.EEXIST, errno.ENOENT, errno.EFBIG, errno.EMFILE, errno.ENFILE})


class StorageError(PipelineError):
    """Reading or writing a file failed in the operating system (full disk, read-only, permissions): not a bug."""

    exit_code = 74  # EX_IOERR in sysexits.h

    @classmethod
    def from_os_error(cls, err: OSError, path: str | Path | None = None, action: str = "write") -> StorageError:
        where = path if path is not None else (err.filename or "a file")
        code = err.errno
        name = errno.errorcode.get(code, "") if code is not None else ""
        hint = _HINTS.get(code, "") if code is not None else ""
        detail = os.strerror(code) if code is not None else str(err)
        return cls(f"{where}: cannot {action}: {detail}{f' ({name})' if name else ''}{f'; {hint}' if hint else ''}")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: raised in the main thread so `finally` blocks clean up (pipeline.signals)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 143 for SIGTERM, 130 for SIGINT


INTERNAL_ERROR_EXIT = 70
