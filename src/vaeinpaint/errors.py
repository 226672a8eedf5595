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
