"""The named experiments of `presets/experiments.yaml`: the study's rows and the rows beyond
it, each a set of params changed from params.yaml, trained on one of two sets (faces or
mixed photos) whose source is chosen apart (the study's FFHQ and Animals-10, or the
stand-ins). `vaeinpaint experiments` lists and queues them; `vaeinpaint report` puts the
study's published figures beside the rows that reproduce them."""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from vaeinpaint import paths
from vaeinpaint.errors import ParamError, one_line
from vaeinpaint.params import Params, flatten

Value = str | int | float | bool
SETS = ("faces", "mixed")
FILE_KEYS = ("data.path", "data.url")  # the params that name an archive (a file:// URL is one on disk)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyRow(Strict):
    """What the study published for the row an experiment reproduces."""

    row: str
    ssim: float
    std: float | None = None


class Experiment(Strict):
    about: str
    set: Literal["faces", "mixed"]
    params: dict[str, Value] = {}
    study: StudyRow | None = None


class Presets(Strict):
    sources: dict[str, dict[Literal["faces", "mixed"], dict[str, Value]]]
    budget: dict[str, Value]
    experiments: dict[str, Experiment]
    teaser: list[str] = []  # the experiments whose restorations the README's teaser shows, in order

    @model_validator(mode="after")
    def _teaser_names_experiments(self) -> Presets:
        unknown = [name for name in self.teaser if name not in self.experiments]
        if unknown:
            raise ValueError(f"teaser: {', '.join(unknown)} is no experiment of this file")
        return self

    @model_validator(mode="after")
    def _complete_and_known(self) -> Presets:
        """Every source gives both sets; every key the file sets is a param of params.yaml."""
        for source, sets in self.sources.items():
            if missing := [s for s in SETS if s not in sets]:
                raise ValueError(f"sources.{source}: no {' or '.join(missing)} set (every source gives faces and mixed)")
        known = set(flatten(Params().model_dump()))
        changed = {f"sources.{src}.{s}": keys for src, sets in self.sources.items() for s, keys in sets.items()}
        changed |= {"budget": self.budget} | {f"experiments.{n}.params": e.params for n, e in self.experiments.items()}
        for where, keys in changed.items():
            if unknown := [k for k in keys if k not in known]:
                raise ValueError(f"{where}: {unknown[0]} is not a param of params.yaml")
        return self

    def overrides(self, name: str, source: str, data_dir: Path) -> dict[str, Value]:
        """The params experiment `name` sets on data `source` (`{data_dir}` filled in), in the
        order a command line gives them: the data, the budget, the experiment's own."""
        if name not in self.experiments:
            raise ParamError(f"experiment {name!r}: unknown (one of: {', '.join(self.experiments)})")
        if source not in self.sources:
            raise ParamError(f"--data {source!r}: unknown (one of: {', '.join(self.sources)})")
        experiment = self.experiments[name]
        data = {k: fill(v, data_dir) for k, v in self.sources[source][experiment.set].items()}
        return {**data, **self.budget, **experiment.params}

    def study_names(self) -> list[str]:
        """The experiments that reproduce a row of the study's table."""
        return [name for name, experiment in self.experiments.items() if experiment.study is not None]


def fill(value: Value, data_dir: Path) -> Value:
    """`value` with `{data_dir}` replaced by the folder's absolute path; inside a `file://` URL
    the path is percent-encoded, so a folder with spaces or `%` in its name reads back whole."""
    if not isinstance(value, str):
        return value
    folder = data_dir.resolve().as_posix()
    return value.format(data_dir=urllib.parse.quote(folder) if value.startswith("file://") else folder)


def archives(overrides: dict[str, Value]) -> dict[str, Path]:
    """The files on disk `overrides` read, by param: `data.path`, and `data.url` where it is a
    file:// URL."""
    found = {}
    for key in FILE_KEYS:
        value = overrides.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == "data.url":
            parsed = urllib.parse.urlparse(value)
            if parsed.scheme != "file":
                continue
            value = urllib.request.url2pathname(parsed.path)
        found[key] = Path(value)
    return found


def load_presets(path: Path | None = None) -> Presets:
    """presets/experiments.yaml of the project (or `path`), checked; a bad file is one line
    naming it and the first thing wrong in it."""
    path = path or paths.project_root() / paths.PRESETS
    try:
        return Presets.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as error:
        raise ParamError(f"{path}: {_first_error(error)}") from None
    except FileNotFoundError:
        raise ParamError(f"{path}: no such file") from None
    except (OSError, yaml.YAMLError) as error:
        raise ParamError(f"{path}: {one_line(error)}") from None


def _first_error(error: ValidationError) -> str:
    """pydantic's first error as `where: what` (`experiments.x.set: Input should be ...`)."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("function-", "literal[")))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "literal_error":
        message += f", got {first['input']!r}"
    return f"{where}: {message}" if where else message
