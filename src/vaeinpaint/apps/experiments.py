"""`vaeinpaint experiments`: the named experiments of presets/experiments.yaml listed, shown as
the `dvc exp run` command line each one is, and queued (or run) by name on the chosen data.

Each experiment is a `dvc exp run -n NAME -S key=value ...`: params.yaml stays the one place
of the defaults (docs/experiments.md says why not DVC's Hydra composition). Before DVC is
called for any of them, every archive they read must exist and every one of their params,
set as DVC's `-S` sets it, must pass `vaeinpaint.params` on top of the project's params.yaml:
a bad preset fails in one line and nothing is queued."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vaeinpaint import paths
from vaeinpaint.console import fails_in_one_line
from vaeinpaint.errors import DataError, ParamError, VaeinpaintError, one_line

if TYPE_CHECKING:
    from dvc.repo import Repo

    from vaeinpaint.presets import Presets, Value

Plan = tuple[str, dict]  # an experiment's name and the params it sets, in command-line order

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The study's rows and the rows beyond it as named DVC experiments: list, show, queue."
)
PRESETS_FILE = typer.Option(None, "--presets", help="the presets file (default: presets/experiments.yaml of the project)")
DATA = typer.Option(..., "--data", help="the data: standin (the shared stand-in sets) or paper (the study's FFHQ and Animals-10)")
DATA_DIR = typer.Option(..., "--data-dir", help="the folder holding the chosen data's archives")

# A Hydra override value (what `-S key=VALUE` parses) that reads back as this very string
# unquoted: a word or path with no character Hydra's grammar gives a meaning to (`:`, `,`,
# quotes, brackets, spaces), not starting with a digit or sign (a number) and none of its
# keywords. Anything else is passed quoted.
HYDRA_PLAIN = re.compile(r"[A-Za-z_/][\w\-./+]*")
HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}
SHELL_SPECIAL_IN_DOUBLE_QUOTES = set('"$`\\!')


def hydra_value(key: str, value: Value) -> str:
    """`value` as DVC's `-S key=VALUE` must be written to set exactly it: numbers and flags as
    Hydra reads them (0.4, 1e-09, true), text as itself or quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if HYDRA_PLAIN.fullmatch(value) and value.lower() not in HYDRA_WORDS:
        return value
    if "\\" not in value and "${" not in value:  # Hydra reads escapes and interpolations even inside quotes
        for quote in ("'", '"'):
            if quote not in value:
                return f"{quote}{value}{quote}"
    raise ParamError(f"{key}: {value!r} cannot be passed to dvc exp run -S (it holds both quotes, a backslash or '${{')")


def exp_run(name: str, overrides: dict[str, Value], *, queue: bool) -> list[str]:
    """The `dvc exp run` arguments that queue (or run) experiment `name` with `overrides`."""
    sets = [part for key, value in overrides.items() for part in ("-S", f"{key}={hydra_value(key, value)}")]
    return ["dvc", "exp", "run", *(["--queue"] if queue else []), "-n", name, *sets]


def shell_word(word: str) -> str:
    """`word` quoted for a POSIX shell; a word holding single quotes (a quoted -S value) goes in
    double quotes where that is safe, which reads better than shlex's '"'"'."""
    quoted = shlex.quote(word)
    if quoted != word and "'" in word and not set(word) & SHELL_SPECIAL_IN_DOUBLE_QUOTES:
        return f'"{word}"'
    return quoted


def shell_line(argv: list[str]) -> str:
    return " ".join(shell_word(word) for word in argv)


def load(presets_file: Path | None) -> Presets:
    from vaeinpaint.presets import load_presets

    return load_presets(presets_file)


def chosen(presets: Presets, names: list[str], every: bool, study: bool) -> list[str]:
    """The experiments asked for: by name, every one (--all) or the study's rows (--study)."""
    if sum((bool(names), every, study)) != 1:
        raise ParamError("give experiment names, --all or --study (one of them)")
    picked = list(presets.experiments) if every else presets.study_names() if study else names
    for name in picked:
        if name not in presets.experiments:
            raise ParamError(f"experiment {name!r}: unknown (one of: {', '.join(presets.experiments)})")
    return list(dict.fromkeys(picked))


def check_archives(name: str, source: str, overrides: dict[str, Value]) -> None:
    """Every archive experiment `name` reads is there (a data.path may also be a folder)."""
    from vaeinpaint.presets import archives

    for key, path in archives(overrides).items():
        if not (path.is_file() if key == "data.url" else path.exists()):
            raise DataError(f"{path}: no such file (experiment {name} reads it as {key} with --data {source}; check --data-dir)")


def check_params(name: str, source: str, overrides: dict[str, Value], root: Path) -> None:
    """Apply `overrides` to a copy of the project's params.yaml exactly as `dvc exp run -S` does
    (DVC's own function: Hydra's parser, DVC's YAML writer), then read it as the stages will."""
    from vaeinpaint.params import load_params

    where = f"experiment {name} (--data {source})"
    params_file = root / paths.PARAMS
    if not params_file.is_file():
        raise ParamError(f"{params_file}: not found (run vaeinpaint experiments in the project, where dvc.yaml is)")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / paths.PARAMS.name
        shutil.copyfile(params_file, copy)
        try:
            set_as_dvc_does(copy, overrides)
            load_params(copy, base=root)
        except ParamError as error:
            raise ParamError(f"{where}: {error}") from None


def set_as_dvc_does(params_file: Path, overrides: dict[str, Value]) -> None:
    """`dvc exp run -S key=value ...` on `params_file`; a setting DVC refuses is named."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.hydra import apply_overrides

    settings = {key: f"{key}={hydra_value(key, value)}" for key, value in overrides.items()}
    original = params_file.read_bytes()
    try:
        apply_overrides(params_file, list(settings.values()))
        return
    except InvalidArgumentError:
        params_file.write_bytes(original)
    for setting in settings.values():  # one by one, to name the one refused
        try:
            apply_overrides(params_file, [setting])
        except InvalidArgumentError as error:
            raise ParamError(f"-S {setting}: DVC refuses it ({one_line(error.__cause__ or error)})") from None


def planned(presets: Presets, names: list[str], source: str, data_dir: Path, root: Path) -> list[Plan]:
    """Each experiment with the params it sets, every one checked before any is queued."""
    plans = [(name, presets.overrides(name, source, data_dir)) for name in names]
    for name, overrides in plans:
        check_archives(name, source, overrides)
    for name, overrides in plans:
        check_params(name, source, overrides, root)
    return plans


def names_in_use(names: list[str], root: Path) -> dict[str, str]:
    """Which of `names` DVC already has on this commit, and how to free each: a finished
    experiment (DVC refuses the name itself, but only when it comes to it, after the names
    before it were queued) or one queued or running (DVC would queue the name twice)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo
    from scmrepo.exceptions import SCMError

    try:
        with Repo(str(root)) as repo:
            return _names_in_use(repo, names)
    except NotDvcRepoError:
        raise ParamError(f"{root}: not a DVC repository (git init; dvc init)") from None
    except SCMError as error:  # a repository with no commit yet, say: DVC's experiments start from one
        raise ParamError(f"{root}: {one_line(error, typed=False)} (dvc exp run needs a commit to start from)") from None


def _names_in_use(repo: Repo, names: list[str]) -> dict[str, str]:
    from dvc.repo.experiments.refs import ExpRefInfo

    baseline = repo.scm.get_rev()
    used = {name: f"dvc exp remove {name}" for name in names if repo.scm.get_ref(str(ExpRefInfo(baseline, name)))}
    queue = repo.experiments.celery_queue
    for entry in (*queue.iter_active(), *queue.iter_queued()):
        if entry.name in names and entry.baseline_rev == baseline:
            used.setdefault(entry.name, f"dvc queue remove {entry.name}")
    return used


def check_names(names: list[str], root: Path) -> None:
    for name, remedy in names_in_use(names, root).items():
        raise ParamError(f"experiment {name}: DVC already has one of this name on this commit (free it: {remedy})")


def dvc(argv: list[str], root: Path, *, capture: bool) -> subprocess.CompletedProcess:
    """`dvc ...` in the project root, with the DVC of this Python (the one this package needs)."""
    return subprocess.run([sys.executable, "-m", "dvc", *argv[1:]], cwd=root, capture_output=capture, text=True)


def dvc_error(out: subprocess.CompletedProcess) -> str:
    """DVC's own error, as one line: its first `ERROR:` line, else its last line."""
    lines = [line.strip() for line in f"{out.stderr or ''}\n{out.stdout or ''}".splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines[-1:] or [f"exit status {out.returncode}"])[0]


def queue_plans(plans: list[Plan], root: Path) -> None:
    for done, (name, overrides) in enumerate(plans):
        out = dvc(exp_run(name, overrides, queue=True), root, capture=True)
        if out.returncode != 0:
            before = f"queued before it: {', '.join(n for n, _ in plans[:done])}" if done else "nothing queued"
            raise VaeinpaintError(f"dvc exp run --queue -n {name}: {dvc_error(out)} ({before})")
        typer.echo(f"queued {name}")
    typer.echo("next: dvc queue start -j 1 (one at a time; dvc queue status follows them), then vaeinpaint report -o results")


def run_plans(plans: list[Plan], root: Path) -> None:
    """Run them one after another in the workspace. A plain `dvc exp run` leaves its params in
    params.yaml; it is put back as it was before each next one, so no row inherits another's."""
    from vaeinpaint.files import atomic_path

    params_file = root / paths.PARAMS
    original = params_file.read_bytes()
    for done, (name, overrides) in enumerate(plans):
        if done:
            with atomic_path(params_file) as tmp:
                tmp.write_bytes(original)
        argv = exp_run(name, overrides, queue=False)
        typer.echo(f"$ {shell_line(argv)}", err=True)
        out = dvc(argv, root, capture=False)
        if out.returncode != 0:
            left = [n for n, _ in plans[done + 1 :]]
            raise VaeinpaintError(
                f"dvc exp run -n {name}: exit status {out.returncode}, its output above" + (f"; not run: {', '.join(left)}" if left else "")
            )


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows])


def changes(params: dict[str, Value]) -> str:
    return " ".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in params.items()) or "-"


@app.command("list")
@fails_in_one_line
def list_experiments(presets_file: Path | None = PRESETS_FILE) -> None:
    """The named experiments: their set, the params they change, the study's SSIM where they reproduce one of its rows."""
    presets = load(presets_file)
    rows = []
    for name, experiment in presets.experiments.items():
        study = experiment.study
        ssim = "" if study is None else f"{study.ssim:.4f}" + ("" if study.std is None else f" ± {study.std:.3f}")
        rows.append([name, experiment.set, changes(experiment.params), ssim, experiment.about])
    typer.echo(table(["NAME", "SET", "CHANGES", "STUDY SSIM", "ABOUT"], rows))
    typer.echo(f"\nevery one also sets {changes(presets.budget)}, and its set's data: --data {' or '.join(presets.sources)}")


@app.command("show")
@fails_in_one_line
def show(
    name: str = typer.Argument(..., help="the experiment (vaeinpaint experiments list)"),
    data: str = DATA,
    data_dir: Path = DATA_DIR,
    queue: bool = typer.Option(False, "--queue", help="the command that queues it instead"),
    presets_file: Path | None = PRESETS_FILE,
) -> None:
    """The dvc exp run command line of one experiment, to copy (nothing is checked or run)."""
    typer.echo(shell_line(exp_run(name, load(presets_file).overrides(name, data, data_dir), queue=queue)))


@app.command("queue")
@fails_in_one_line
def queue(
    names: list[str] = typer.Argument(None, metavar="NAME", help="the experiments (vaeinpaint experiments list)"),
    every: bool = typer.Option(False, "--all", help="every experiment"),
    study: bool = typer.Option(False, "--study", help="the study's rows"),
    data: str = DATA,
    data_dir: Path = DATA_DIR,
    run: bool = typer.Option(False, "--run", help="run them now, one after another, instead of queuing them"),
    presets_file: Path | None = PRESETS_FILE,
) -> None:
    """Queue experiments as dvc exp run --queue -n NAME -S ... (run them with dvc queue start), after checking every one."""
    presets = load(presets_file)
    root = paths.project_root()
    plans = planned(presets, chosen(presets, names or [], every, study), data, data_dir, root)
    check_names([name for name, _ in plans], root)
    (run_plans if run else queue_plans)(plans, root)
