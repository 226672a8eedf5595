"""The `vaeinpaint` command, and the one way every stage script reports errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import typer

from vaeinpaint.errors import VaeinpaintError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Image inpainting with variational autoencoders.")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("alembic", "mlflow", "urllib3", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(main: Callable[..., Any]) -> None:
    """Run a stage's typer `main`: bad input (a VaeinpaintError) becomes one line on stderr
    naming the problem, and exit status 2."""
    setup_logging()
    try:
        typer.run(main)
    except VaeinpaintError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


@app.command()
def validate(params_file: str = typer.Option("params.yaml", "--params", help="params file to check")) -> None:
    """Check params.yaml and print every param, flattened."""
    from vaeinpaint.params import load_params

    try:
        params = load_params(params_file)
    except VaeinpaintError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for key, value in params.flat().items():
        typer.echo(f"{key}: {value}")
