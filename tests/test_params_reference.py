"""docs/configuration.md is generated from the params code: it must be what the generator writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaeinpaint.errors import ParamError
from vaeinpaint.params import Params
from vaeinpaint.params_reference import COMMAND, bounds_of, render, render_project, yaml_comments

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"


def test_the_committed_page_is_the_generated_one():
    assert PAGE.read_text() == render_project(ROOT), f"docs/configuration.md is out of date with the params code: run `{COMMAND}`"


def test_every_key_of_every_block_has_a_row_with_its_default():
    page = PAGE.read_text()
    for block, info in Params.model_fields.items():
        section = page.split(f"\n## {block}\n", 1)[1].split("\n## ", 1)[0]
        keys = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
        assert sorted(keys) == sorted(info.annotation.model_fields), block
    assert "| `ratio` | number, in (0, 1) | `0.2` |" in page
    assert "| `size` | integer, in [32, 512] pixels | `100` |" in page
    assert "| `source` | `builtin`, `folder`, `url`, `ffhq`, `animals10` | `builtin` |" in page
    assert "| `methods` | a list of `corrupted`, `biharmonic`, `telea` | `[corrupted, biharmonic, telea]` |" in page


def test_descriptions_come_from_params_yaml_comments():
    text = 'data:\n  source: builtin   # where the images come from\n  path: ""  # a # inside a comment stays\nprepare:\n  size: 100\n'
    assert yaml_comments(text) == {
        ("data", "source"): "where the images come from",
        ("data", "path"): "a # inside a comment stays",
        ("prepare", "size"): "",
    }
    split = "occlusion:\n  ratio: 0.2   # each box covers this share...\n  ratio_of: area   # ...of the area\n"
    assert list(yaml_comments(split).values()) == ["each box covers this share", "of the area"]


def test_a_key_without_a_description_is_an_error_naming_it():
    text = re.sub(r"^(  epochs: \S+).*$", r"\1", (ROOT / "params.yaml").read_text(), count=1, flags=re.M)
    with pytest.raises(ParamError, match=r"^params.yaml: train.epochs has no comment"):
        render(text, yaml.safe_load((ROOT / "dvc.yaml").read_text()))


def test_bounds_read_as_intervals():
    fields = {name: info for block in Params.model_fields.values() for name, info in block.annotation.model_fields.items()}
    assert bounds_of(fields["val_fraction"]) == "in [0, 0.5)"
    assert bounds_of(fields["stroke_width"]).startswith("in (0, 1] (a share")
    assert bounds_of(fields["gpus"]) == "≥ 1"
    assert bounds_of(fields["source"]) == ""


def test_the_stages_reading_a_key_come_from_dvc_yaml():
    page = PAGE.read_text()
    assert "| `image_every` |" in page and "no stage (changes no output)" in page.split("| `image_every` |")[1].split("\n")[0]
    assert "`evaluate`, `train`" in page.split("| `seed` | integer | `0` | initial weights")[1].split("\n")[0]


def test_the_command_writes_the_page(tmp_path):
    out = tmp_path / "configuration.md"
    done = subprocess.run([sys.executable, "-m", "vaeinpaint.params_reference", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == PAGE.read_text()
