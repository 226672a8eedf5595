"""One way to fail: `errors.one_line` for any exception, `console.fails_in_one_line` for every
command (and, through `run_stage`, every stage script): `error: <line>`, exit status 2."""

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from vaeinpaint.cli import app
from vaeinpaint.console import fails_in_one_line
from vaeinpaint.errors import DataError, ParamError, one_line


@pytest.mark.parametrize(
    "exc, kwargs, line",
    [
        (ValueError("bad value\nTraceback-like detail"), {}, "ValueError: bad value"),
        (OSError("  spaced  \n"), {}, "OSError: spaced"),
        (KeyError(), {}, "KeyError"),
        (RuntimeError("x" * 300), {"limit": 10}, "RuntimeError: " + "x" * 10),
        (RuntimeError("the server said no\nmore"), {"typed": False}, "the server said no"),
    ],
)
def test_an_exception_as_one_line(exc, kwargs, line):
    assert one_line(exc, **kwargs) == line


def _app_raising(exc: Exception) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @fails_in_one_line
    def go(name: str = typer.Option("x", help="kept: typer reads the options through the wrapper")) -> None:
        raise exc

    return app


@pytest.mark.parametrize("exc", [ParamError("train.lr: must be > 0, got 0.0"), DataError("photo.png: not found")])
def test_a_vaeinpaint_error_is_one_line_and_exit_2(exc):
    result = CliRunner().invoke(_app_raising(exc), ["--name", "y"])
    assert result.exit_code == 2
    assert result.stderr == f"error: {exc}\n"
    assert result.stdout == ""


def test_a_bug_keeps_its_traceback():
    result = CliRunner().invoke(_app_raising(ZeroDivisionError("bug")), [])
    assert result.exit_code == 1
    assert isinstance(result.exception, ZeroDivisionError)


def test_every_command_fails_the_same_way():
    for command in app.registered_commands:
        assert getattr(command.callback, "__wrapped__", None) is not None, command.name or command.callback.__name__


def test_the_benchmark_is_a_command_and_a_module():
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0 and "--quick" in result.stdout
    module = subprocess.run([sys.executable, "-m", "vaeinpaint.bench", "--help"], capture_output=True, text=True)
    assert module.returncode == 0 and "--quick" in module.stdout
    bad = subprocess.run([sys.executable, "-m", "vaeinpaint.bench", "--device", "tpu", "--quick"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1, bad.stderr[-500:]
