"""How every command and stage script talks to the terminal: logging set up once, and ONE way
to fail: a `VaeinpaintError` (bad input the user can fix) becomes `error: <one line>` on
stderr and exit status 2, with no traceback. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from vaeinpaint.errors import VaeinpaintError

F = TypeVar("F", bound=Callable[..., Any])
NOISY_LOGGERS = ("alembic", "mlflow", "urllib3", "PIL", "matplotlib")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fails_in_one_line(command: F) -> F:
    """`command` with a VaeinpaintError reported as `error: ...` and exit status 2. The wrapper
    keeps the signature (functools.wraps), so typer still reads the command's options from it."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VaeinpaintError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def run_stage(main: Callable[..., Any]) -> None:
    """Run a stage script's (or `python -m` module's) typer `main` as a command of its own."""
    setup_logging()
    typer.run(fails_in_one_line(main))
