"""Errors a user can fix. Stages print them as one line and exit non-zero."""


class VaeinpaintError(Exception):
    """Base class: bad input (params, data, files), reported as one line."""


class ParamError(VaeinpaintError):
    """A param in params.yaml is missing, of the wrong type or out of range."""


class DataError(VaeinpaintError):
    """Input data is missing, corrupt, unsafe or does not match the params."""


class TrainingError(VaeinpaintError):
    """Training cannot go on (e.g. the loss became NaN)."""


class TrackingError(VaeinpaintError):
    """MLflow cannot be reached, or a model URI does not resolve."""


def one_line(exc: BaseException, limit: int = 160, *, typed: bool = True) -> str:
    """An exception as one short line (`Type: first line of its message`; without `typed`, the
    line alone where the message says enough): every error the project reports about a
    failure it caught is one line, whatever the library raised."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return exc.__class__.__name__
    return f"{exc.__class__.__name__}: {lines[0][:limit]}" if typed else lines[0][:limit]
