"""The `vaeinpaint` command, and the one way every stage script reports errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
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


@app.command()
def inpaint(
    photo: Path = typer.Argument(..., help="the photo: any size; gray, RGB, RGBA, palette or 16-bit"),
    output: Path = typer.Option(..., "--output", "-o", help="where to write the result: .png, .tif, .bmp or .webp (lossless)"),
    mask: Path | None = typer.Option(None, "--mask", help="a mask image the photo's size: white = missing"),
    box: str | None = typer.Option(None, "--box", help="the hole as x,y,w,h in the photo's pixels"),
    ratio: float | None = typer.Option(None, "--random", help="a random hole: squares each this share of the photo's area, or --shape"),
    count: int = typer.Option(1, "--count", help="--random: how many squares or rectangles (never overlapping)"),
    shape: str = typer.Option("square", "--shape", help="--random: square, rectangle, strokes or mixed (as occlusion.shape)"),
    seed: int = typer.Option(0, "--seed", help="seeds --random's placement and --samples' draws"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="a trained model (default: data/model/checkpoint.pt in the project)"),
    samples: int = typer.Option(1, "--samples", help="1: the most likely completion; K > 1: K drawn from the latent, as NAME_1 ... NAME_K"),
    save_mask: Path | None = typer.Option(None, "--save-mask", help="also write the mask used (white = missing)"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
) -> None:
    """Fill a hole in a photo with the trained VAE; pixels outside the hole are kept exactly."""
    # Imported here, not at the top: torch takes seconds to load and `validate` needs none of it.
    from vaeinpaint import paths
    from vaeinpaint.apps.inpaint import inpaint as inpaint_photo

    try:
        written = inpaint_photo(
            photo,
            output,
            checkpoint if checkpoint is not None else paths.project_root() / paths.CHECKPOINT,
            mask=mask,
            box=box,
            ratio=ratio,
            count=count,
            seed=seed,
            shape=shape,
            samples=samples,
            save_mask=save_mask,
            device=device,
        )
    except VaeinpaintError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"wrote {path}")
