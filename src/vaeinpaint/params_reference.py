"""docs/configuration.md, written from the params code, so the reference cannot drift from it.

Every block of params.yaml and every key in it: its type or allowed values, default and
bounds, from the pydantic models of `params/blocks.py`; what it does, from the comment after
the key in params.yaml (that file's inline comments are its per-key documentation) or, where a
field has one, its `Field(description=...)`; and which stages read it, from dvc.yaml.

    python -m vaeinpaint.params_reference docs/configuration.md

tests/test_params_reference.py checks the committed page equals what this writes.
This module lives outside `params/` on purpose: every stage of dvc.yaml depends on that folder,
and a docs generator there would make DVC re-run the whole pipeline.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import typer
import yaml
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BeforeValidator
from pydantic.fields import FieldInfo

from vaeinpaint.console import run_stage
from vaeinpaint.errors import ParamError
from vaeinpaint.files import atomic_path
from vaeinpaint.params import Params
from vaeinpaint.params.fields import (
    AUGMENTS,
    Says,
    to_augment,
    to_batch_size,
    to_flag,
    to_integer,
    to_list,
    to_number,
    to_samples,
    to_text,
)
from vaeinpaint.paths import project_root

COMMAND = "python -m vaeinpaint.params_reference docs/configuration.md"
# `  key: value   # what it does`: a key of a block and the comment after its value.
KEY_LINE = re.compile(r"^\s+(?P<key>[A-Za-z_]\w*):(?P<value>[^#]*?)(?:\s+#\s?(?P<comment>.*))?$")
BLOCK_LINE = re.compile(r"^(?P<block>[A-Za-z_]\w*):\s*(?:#.*)?$")

# What each coercion of params/fields.py accepts, in the words of params.yaml.
COERCIONS = {
    to_number: "number",
    to_integer: "integer",
    to_flag: "`true` or `false`",
    to_text: "text",
    to_augment: "`none`, " + ", ".join(f"`{op}`" for op in AUGMENTS) + ", `" + "+".join(AUGMENTS) + "`, or a list (`[flip, crop]`)",
    to_batch_size: "`auto` or an integer ≥ 1",
    to_samples: "`auto` or an integer ≥ 0",
}


def yaml_comments(text: str) -> dict[tuple[str, str], str]:
    """(block, key) -> the comment after the key's value in params.yaml's text ("" if none), in
    the file's order. A comment split over two keys (`...` at the end of one, at the start of
    the next) reads as two sentences once the dots are gone."""
    comments: dict[tuple[str, str], str] = {}
    block = ""
    for line in text.splitlines():
        if start := BLOCK_LINE.match(line):
            block = start["block"]
        elif (entry := KEY_LINE.match(line)) and block:
            comments[(block, entry["key"])] = (entry["comment"] or "").strip().removeprefix("...").removesuffix("...").strip()
    return comments


def stages_reading(dvc: dict[str, Any]) -> dict[str, list[str]]:
    """`block` or `block.key` -> the stages of dvc.yaml whose params name it."""
    readers: dict[str, list[str]] = {}
    for stage, spec in dvc.get("stages", {}).items():
        for entry in spec.get("params", []):
            names = list(entry.values())[0] if isinstance(entry, dict) else [entry]
            for name in names:
                readers.setdefault(str(name), []).append(stage)
    return readers


def literal_values(annotation: Any) -> tuple[Any, ...]:
    """The values of a Literal, also inside `int | Literal[...]` or `tuple[Literal[...], ...]`."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return tuple(value for arg in get_args(annotation) if arg is not Ellipsis for value in literal_values(arg))


def kind_of(info: FieldInfo) -> str:
    """The type or allowed values of a field, as a reader of params.yaml writes them."""
    coercions = [m.func for m in info.metadata if isinstance(m, BeforeValidator)]
    values = literal_values(info.annotation)
    if to_list in coercions:
        return "a list of " + ", ".join(f"`{v}`" for v in values)
    for coercion in coercions:
        if coercion in COERCIONS:
            return COERCIONS[coercion]
    if values:
        return ", ".join(f"`{v}`" for v in values)
    raise ParamError(f"params_reference: no words for the type of a field ({info.annotation!r}); add them to COERCIONS")


def bounds_of(info: FieldInfo) -> str:
    """`in (0, 1)`, `≥ 1`, `32 to 512 pixels`, ... from the field's constraints; "" if none."""
    low = next(((m.gt, "(") for m in info.metadata if isinstance(m, Gt)), None) or next(
        ((m.ge, "[") for m in info.metadata if isinstance(m, Ge)), None
    )
    high = next(((m.lt, ")") for m in info.metadata if isinstance(m, Lt)), None) or next(
        ((m.le, "]") for m in info.metadata if isinstance(m, Le)), None
    )
    note = " ".join(m.note for m in info.metadata if isinstance(m, Says) and m.note)
    if low and high:
        text = f"in {low[1]}{low[0]:g}, {high[0]:g}{high[1]}"
    elif low:
        text = f"{'>' if low[1] == '(' else '≥'} {low[0]:g}"
    elif high:
        text = f"{'<' if high[1] == ')' else '≤'} {high[0]:g}"
    else:
        return ""
    return f"{text} {note}".strip()


def as_yaml(value: Any) -> str:
    """A default as params.yaml writes it."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    if value == "":
        return '""'
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def block_section(name: str, model: type, comments: dict[tuple[str, str], str], readers: dict[str, list[str]]) -> list[str]:
    stages = readers.get(name, [])
    lines = [f"## {name}", ""]
    lines += ["| key | type or values | default | what it does | read by |", "| :-- | :-- | :-- | :-- | :-- |"]
    in_file = [key for (block, key) in comments if block == name and key in model.model_fields]
    for key in in_file + [key for key in model.model_fields if key not in in_file]:
        info = model.model_fields[key]
        about = info.description or comments.get((name, key), "")
        if not about:
            raise ParamError(f"params.yaml: {name}.{key} has no comment saying what it does (add one after its value)")
        kind = kind_of(info)
        bounds = bounds_of(info)
        read_by = sorted(set(stages + readers.get(f"{name}.{key}", [])))
        kind_cell = f"{kind}, {bounds}" if bounds else kind
        by = ", ".join(f"`{s}`" for s in read_by) or "no stage (changes no output)"
        lines.append(f"| `{key}` | {cell(kind_cell)} | `{cell(as_yaml(info.default))}` | {cell(about)} | {by} |")
    return lines + [""]


def render(params_yaml: str, dvc: dict[str, Any]) -> str:
    """The whole page, from params.yaml's text (its comments) and dvc.yaml (who reads what)."""
    comments = yaml_comments(params_yaml)
    readers = stages_reading(dvc)
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from src/vaeinpaint/params/blocks.py,",
        "     params.yaml's comments and dvc.yaml: edit those, then run it again. -->",
        "",
        "Every key of `params.yaml`, block by block: its type or allowed values (with bounds where",
        "the params code has them), its default, what it does, and which stages of `dvc.yaml` read",
        "it (changing it re-runs those stages and what follows them). Set a key in `params.yaml`, or",
        "for one experiment with `dvc exp run -S <block>.<key>=<value>`; `vaeinpaint validate` checks a",
        "file. A key left empty (`ratio:`) takes its default; an unknown key is an error. How the",
        "params are checked, and the rules between keys: [pipeline.md](pipeline.md#bad-input).",
        "",
        "Blocks: " + ", ".join(f"[{name}](#{name})" for name in Params.model_fields) + ".",
        "",
    ]
    for name, info in Params.model_fields.items():
        lines += block_section(name, info.annotation, comments, readers)
    return "\n".join(lines).rstrip("\n") + "\n"


def render_project(root: Path) -> str:
    """The page for the project at `root` (its params.yaml and dvc.yaml)."""
    return render((root / "params.yaml").read_text(), yaml.safe_load((root / "dvc.yaml").read_text()))


def write_page(output: Path, root: Path) -> None:
    with atomic_path(output) as tmp:
        tmp.write_text(render_project(root))


def main(output: Path = typer.Argument(..., help="where to write the page, e.g. docs/configuration.md")) -> None:
    """Write the configuration reference from the params code."""
    write_page(output, project_root())
    typer.echo(str(output))


if __name__ == "__main__":
    run_stage(main)
