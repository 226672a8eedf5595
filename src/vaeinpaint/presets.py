"""The named experiments of `presets/experiments.yaml`: the study's rows and the rows beyond
it, each a set of params changed from params.yaml, trained on one of two sets (faces or
mixed photos) whose source is chosen apart (the study's FFHQ and Animals-10, or the
stand-ins). `vaeinpaint experiments` lists and queues them; `vaeinpaint report` puts the
study's published figures beside the rows that reproduce them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from vaeinpaint import paths
from vaeinpaint.errors import ParamError, one_line

Value = str | int | float | bool


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

    def overrides(self, name: str, source: str, data_dir: Path) -> dict[str, Value]:
        """The params experiment `name` sets on data `source` (`{data_dir}` filled in), in the
        order a command line gives them: the data, the budget, the experiment's own."""
        if name not in self.experiments:
            raise ParamError(f"experiment {name!r}: unknown (one of: {', '.join(self.experiments)})")
        if source not in self.sources:
            raise ParamError(f"--data {source!r}: unknown (one of: {', '.join(self.sources)})")
        experiment = self.experiments[name]
        data = {
            k: v.format(data_dir=data_dir.resolve().as_posix()) if isinstance(v, str) else v
            for k, v in self.sources[source][experiment.set].items()
        }
        return {**data, **self.budget, **experiment.params}


def load_presets(path: Path | None = None) -> Presets:
    """presets/experiments.yaml (or `path`), checked; a bad file is one line naming it."""
    path = path or paths.PRESETS
    try:
        return Presets.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise ParamError(f"{path}: {one_line(error)}") from error
