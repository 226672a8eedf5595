"""`vaeinpaint bench` (and `python -m vaeinpaint.bench`): the options, and the run's table and
JSON line. What is measured, and how, is `speed.py`'s; it loads torch, so it is imported when
the command runs, not when the `vaeinpaint` command starts."""

from __future__ import annotations

import json

import typer


def bench(
    quick: bool = typer.Option(False, "--quick", help="fewer steps and images: under two minutes on 2 CPU cores"),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    compile_check: bool = typer.Option(None, "--compile/--no-compile", help="also time torch.compile (default: not with --quick)"),
    prepare: bool = typer.Option(True, "--prepare/--no-prepare", help="also time prepare on 1024x1024 JPEGs"),
    batch_size: int = typer.Option(
        0,
        help="training batch of the default model (0: the pipeline's, train.batch_size as training resolves it: auto is 32 on CPU, 256 on CUDA)",
    ),
) -> None:
    """Speed and size on this machine: training and evaluation images/s, checkpoint sizes, prepare; the last line is JSON."""
    from vaeinpaint.bench.speed import run, table

    result = run(quick=quick, device_name=device, compile_check=compile_check, prepare=prepare, batch_size=batch_size)
    typer.echo(table(result))
    typer.echo(json.dumps(result))
