"""The `vaeinpaint` command. Each subcommand imports what it needs when it runs (torch takes
seconds to load, and `validate` needs none of it); every one fails the same way
(`console.fails_in_one_line`: `error: ...`, exit status 2)."""

from __future__ import annotations

from pathlib import Path

import typer

from vaeinpaint.apps.experiments import app as experiments_app
from vaeinpaint.bench.command import bench
from vaeinpaint.console import fails_in_one_line, setup_logging
from vaeinpaint.errors import ParamError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Image inpainting with variational autoencoders.")
app.command("bench")(fails_in_one_line(bench))
app.add_typer(experiments_app, name="experiments")  # its commands fail in one line each


@app.command()
@fails_in_one_line
def validate(params_file: str = typer.Option("params.yaml", "--params", help="params file to check")) -> None:
    """Check params.yaml and print every param, flattened."""
    from vaeinpaint.params import load_params

    params = load_params(params_file)
    for key, value in params.flat().items():
        typer.echo(f"{key}: {value}")


@app.command()
@fails_in_one_line
def inpaint(
    photo: Path = typer.Argument(..., help="the photo (any size; gray, RGB, RGBA, palette or 16-bit), or a folder of photos"),
    output: Path = typer.Option(
        ..., "--output", "-o", help="the result: .png, .tif, .bmp or .webp (lossless); for a folder, a folder (PNGs)"
    ),
    mask: Path | None = typer.Option(
        None, "--mask", help="a mask image the photo's size, white = missing; for a folder, a folder of masks named as the photos"
    ),
    box: str | None = typer.Option(None, "--box", help="the hole as x,y,w,h in the photo's pixels"),
    ratio: float | None = typer.Option(None, "--random", help="a random hole: squares each this share of the photo's area, or --shape"),
    count: int = typer.Option(1, "--count", help="--random: how many squares or rectangles (never overlapping)"),
    shape: str = typer.Option("square", "--shape", help="--random: square, rectangle, strokes or mixed (as occlusion.shape)"),
    seed: int = typer.Option(0, "--seed", help="seeds --random's placement and --samples' draws"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="a checkpoint file, runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION (default: data/model/checkpoint.pt in the project)",
    ),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="a checkpoint file (the same as --model with a path)"),
    samples: int = typer.Option(
        1,
        "--samples",
        help="1: the most likely completion; K > 1: K drawn from the latent (a learned prior's, where the checkpoint has one), as NAME_1 ... NAME_K",
    ),
    save_mask: Path | None = typer.Option(None, "--save-mask", help="also write the mask used (white = missing); for a folder, a folder"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    strategy: str = typer.Option(
        "crop",
        "--strategy",
        help="photos larger than the model: crop (a window around each hole), resize (whole photo to the model's size), original (whole photo, up to 1024 px)",
    ),
) -> None:
    """Fill a hole in a photo (or in every photo of a folder) with the trained VAE; pixels outside the hole are kept exactly."""
    from vaeinpaint.apps.models import pipeline_spec

    spec = model or (str(checkpoint) if checkpoint is not None else pipeline_spec())
    options = dict(box=box, ratio=ratio, count=count, shape=shape, seed=seed, samples=samples, device=device, strategy=strategy)
    if model is not None and checkpoint is not None:
        raise ParamError("--model and --checkpoint: give one of them (--checkpoint is --model for a file)")
    if photo.is_dir():
        from vaeinpaint.apps.batch import inpaint_folder

        report = inpaint_folder(photo, output, spec, mask_dir=mask, save_mask_dir=save_mask, **options)
        lines = report.summary(output)
        typer.echo(lines[0])
        for line in lines[1:]:
            typer.echo(line, err=True)
        if report.skipped:
            raise typer.Exit(1)
        return
    from vaeinpaint.apps.inpaint import inpaint as inpaint_photo

    for path in inpaint_photo(photo, output, spec, mask=mask, save_mask=save_mask, **options):
        typer.echo(f"wrote {path}")


@app.command()
@fails_in_one_line
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="the address to listen on (0.0.0.0: every interface; then set --token)"),
    port: int = typer.Option(7860, "--port", help="the port to listen on"),
    model: str | None = typer.Option(
        None,
        "--model",
        help="the default model: a checkpoint path, runs:/RUN_ID/model, models:/NAME@ALIAS or models:/NAME/VERSION (default: the pipeline's data/model/checkpoint.pt)",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="VAEINPAINT_TOKEN",
        help="require this token on every request (Authorization: Bearer, or ?token= once in the page's address)",
    ),
    max_megapixels: float = typer.Option(40.0, "--max-megapixels", help="refuse images with more pixels than this"),
    max_request_mb: float = typer.Option(100.0, "--max-request-mb", help="refuse requests larger than this many MB"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
) -> None:
    """A local web page (and HTTP API) to restore your own photos: paint the hole, compare, download."""
    from vaeinpaint.apps.server import ServerSettings, run_server

    settings = ServerSettings(
        model=model, token=token, max_pixels=int(max_megapixels * 1e6), max_request_bytes=int(max_request_mb * 1e6), device=device
    )
    run_server(settings, host, port)


@app.command()
@fails_in_one_line
def doctor(
    gpu: bool = typer.Option(
        False, "--gpu", help="also run the GPU test tier (pytest -m gpu) and the quick benchmark on CUDA: under 8 minutes on one H100"
    ),
) -> None:
    """What this machine offers training: torch, CUDA, cuDNN, the GPUs and driver, what train.device and
    train.precision auto would choose and why, and whether train.compile has its compiler."""
    from vaeinpaint.doctor import run_doctor

    raise typer.Exit(run_doctor(gpu, typer.echo))


@app.command()
@fails_in_one_line
def register(
    run: str | None = typer.Option(None, "--run", help="the MLflow run whose model to register"),
    best: str | None = typer.Option(
        None, "--best", help="or: the run with the best value of this metric in the experiment (ties: the newest)"
    ),
    higher: bool | None = typer.Option(
        None,
        "--higher/--lower",
        help="--best: whether a higher value is better (default by the metric's name: ssim, psnr higher; loss, l1, kl lower)",
    ),
    alias: str | None = typer.Option(None, "--alias", help="point this alias at the new version, e.g. champion"),
    name: str = typer.Option("vae-inpainting", "--name", help="the registered model's name"),
) -> None:
    """Register a run's model in the MLflow model registry (a new version) and set an alias."""
    setup_logging()
    from vaeinpaint import tracking

    done = tracking.register(run_id=run, metric=best, higher=higher, alias=alias, name=name)
    chosen = f" ({done['metric']})" if "metric" in done else ""
    typer.echo(f"registered {done['source']}{chosen} as {done['uri']}")
    if "alias_uri" in done:
        typer.echo(f"alias: {done['alias_uri']} -> version {done['version']}")


@app.command()
@fails_in_one_line
def report(
    files: list[Path] = typer.Argument(
        None, help="--check / --update: markdown files with <!-- report:NAME --> blocks (README.md docs/*.md)"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="the report's folder: results.md, experiments.json, grids/, quality_by_minute.png"
    ),
    source: Path | None = typer.Option(
        None,
        "--from",
        help="an experiments.json to render instead of collecting from DVC (default for --check/--update: results/experiments.json)",
    ),
    check: bool = typer.Option(False, "--check", help="say which FILES' report blocks differ from the experiments.json (exit 1)"),
    update: bool = typer.Option(False, "--update", help="rewrite the report blocks of FILES from the experiments.json"),
    project: Path | None = typer.Option(None, "--project", help="the DVC project to collect from (default: the one around here)"),
    all_commits: bool = typer.Option(False, "--all-commits", help="the experiments of every commit, not only those run on HEAD"),
) -> None:
    """Results of the finished experiments (the workspace and every `dvc exp`), beside the study's table: results.md, figures, grids."""
    from vaeinpaint.paths import project_root
    from vaeinpaint.report import run_report

    raise typer.Exit(run_report(files or [], output, source, check, update, project or project_root(), all_commits, typer.echo))
