"""One small exception hierarchy; the CLI maps each class to an exit code a scheduler can act on."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: anything the pipeline reports on purpose."""

    exit_code = 1


class ConfigError(PipelineError):
    """The YAML config is missing, malformed, or holds a wrong key or value."""

    exit_code = 2


class DataContractError(PipelineError):
    """The input as a whole is unusable: unreadable, empty, a required column missing, all rows bad."""

    exit_code = 3


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


INTERNAL_ERROR_EXIT = 70
