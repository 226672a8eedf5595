"""The docs do not drift from the project: every relative link resolves (files, and #anchors to
headings as GitHub makes them), every `-S key=value` they show is a value the params code
accepts as DVC would write it into params.yaml, and CITATION.cff and LICENSE say what
pyproject.toml says."""

from __future__ import annotations

import itertools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from vaeinpaint.errors import ParamError
from vaeinpaint.params import Params, from_dict

ROOT = Path(__file__).resolve().parents[1]
# Pages other branches write, which the docs already link to. While one is missing its links are
# allowed; once it exists its entry must go (a test says so), so the allowance cannot outlive it.
PENDING_PAGES: dict[str, str] = {}  # page -> what it will hold, for a link written before its page
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
COMMAND_PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""")
SHELL = {"", "bash", "sh", "shell", "console", "zsh"}
ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)\}?")


def rel(path: Path) -> str:
    """A page's name as messages give it: from the repository's root (a page elsewhere: its name)."""
    return str(path.relative_to(ROOT)) if ROOT in path.parents else path.name


def prose_and_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str, list[str]]]]:
    """(the lines outside fenced code, numbered; each fenced block: its first line, its language, its lines)."""
    prose, blocks, block = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            if block is None:
                block = (number, line.strip().lstrip("`~").strip().split(" ")[0].lower(), [])
            else:
                blocks.append(block)
                block = None
        elif block is not None:
            block[2].append(line)
        else:
            prose.append((number, line))
    return prose, blocks


# --- links and anchors --------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation other than
    `-` and `_` dropped, each space a `-` (github-slugger's rule)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*)", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a markdown file: its headings' slugs (repeats numbered -1, -2, ... as
    GitHub numbers them) and explicit `<a name=...>` / `id=` anchors."""
    prose, _ = prose_and_code(path.read_text())
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose:
        found |= set(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading[2])
            found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return found


def paragraphs(prose: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Prose lines joined into paragraphs (a link or a code span may wrap): (first line, text)."""
    joined: list[tuple[int, str]] = []
    previous = -1
    for number, line in prose:
        if line.strip() and joined and number == previous + 1 and not HEADING.match(line):
            joined[-1] = (joined[-1][0], joined[-1][1] + " " + line.strip())
        elif line.strip():
            joined.append((number, line.strip()))
        previous = number if line.strip() else -1
    return joined


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image outside code in a markdown file."""
    prose, _ = prose_and_code(path.read_text())
    return [(number, target) for number, text in paragraphs(prose) for target in LINK.findall(INLINE_CODE.sub("", text))]


def relative_links() -> list[tuple[Path, int, str]]:
    external = ("http://", "https://", "mailto:", "ftp://")
    return [(page, number, target) for page in PAGES if page.exists() for number, target in links(page) if not target.startswith(external)]


def link_problem(page: Path, target: str, root: Path = ROOT) -> str | None:
    """Why a relative link of `page` does not resolve (None: it does)."""
    file_part, _, anchor = target.partition("#")
    resolved = (page.parent / file_part).resolve() if file_part else page
    if resolved != root and root not in resolved.parents:
        return "outside the repository"
    name = str(resolved.relative_to(root))
    if not resolved.exists():
        return None if name in PENDING_PAGES else "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading with the anchor #{anchor} in {name}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    broken = [
        f"{rel(page)}:{number}: {target}: {problem}"
        for source, number, target in relative_links()
        if source == page and (problem := link_problem(page, target))
    ]
    assert broken == []


def test_the_link_check_catches_missing_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "a.md"
    page.write_text("# A page\n\n## Its part\n")
    (tmp_path / "docs" / "b.md").write_text("# B: `code` and more\n")
    problem = lambda target: link_problem(page, target, root=tmp_path)  # noqa: E731
    assert problem("#its-part") is None and problem("b.md#b-code-and-more") is None and problem("../docs/b.md") is None
    assert problem("#nowhere") == "no heading with the anchor #nowhere in docs/a.md"
    assert problem("b.md#its-part") == "no heading with the anchor #its-part in docs/b.md"
    assert problem("c.md") == "no such file"
    assert problem("../../elsewhere.md") == "outside the repository"


def test_pending_pages_are_still_pending():
    arrived = sorted(page for page in PENDING_PAGES if (ROOT / page).exists())
    assert arrived == [], "these pages exist now: remove them from PENDING_PAGES in tests/test_docs.py"


def test_the_docs_index_names_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    named = {target.partition("#")[0] for _, target in links(ROOT / "docs" / "index.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert sorted(pages - named) == [], "docs/index.md: give every page of docs/ its line"
    assert index.count("\n- [") >= len(pages)


def test_slugs_follow_githubs_rules():
    assert github_slug("Training: devices, precision, time budget, resume") == "training-devices-precision-time-budget-resume"
    assert github_slug("Realism of the holes' fills: `hole_swd`") == "realism-of-the-holes-fills-hole_swd"
    assert github_slug("The learned prior: many completions") == "the-learned-prior-many-completions"
    assert github_slug("Experiments: the study's table as commands") == "experiments-the-studys-table-as-commands"
    assert github_slug("[FFHQ](https://example.org) and **Animals-10**") == "ffhq-and-animals-10"


def test_repeated_headings_are_numbered_as_github_numbers_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('# Notes\n\n## Usage\n\n```bash\n# not a heading\n```\n\n## Usage\n\n<a name="here"></a>\n')
    assert anchors(page) == {"notes", "usage", "usage-1", "here"}


def test_the_pipeline_page_has_every_stage_and_output_of_dvc_yaml():
    page = (ROOT / "docs" / "pipeline.md").read_text()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines() if line.startswith("| `")}
    assert sorted(rows) == sorted(stages), "docs/pipeline.md: one row per stage of dvc.yaml"
    for name, stage in stages.items():
        written = [next(iter(o)) if isinstance(o, dict) else o for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
        missing = [path for path in written if path not in rows[name]]
        assert missing == [], f"docs/pipeline.md: the {name} row does not name {missing}"


# --- `-S key=value` as DVC writes it -------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """One `-S key=value` of a page: where it is, the key, and the value as typed (unquoted)."""

    where: str
    key: str
    text: str


def is_placeholder(text: str) -> bool:
    """`<64 hex digits>`, `$VAR` left unexpanded, `{data_dir}`, `...`: a value to fill in, not one."""
    return bool(re.search(r"[<>$]|\{[^}]*\}|\.\.\.", text))


def split_top_level_commas(text: str) -> list[str]:
    """Hydra's sweep `a,b,c` -> [a, b, c]; commas inside [...] or quotes are a list's, not a sweep's."""
    parts, depth, current, quote = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def hydra_value(text: str) -> Any:
    """An override's value as Hydra parses it: YAML-like, except that any number is a number
    (YAML 1.1 reads `1e-9`, without a dot, as text)."""
    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str) and NUMBER.match(value.strip()):
        return int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else float(value)
    return value


def as_dvc_writes(text: str) -> Any:
    """The value params.yaml holds after `dvc exp run -S key=text`, as the project reads it back.

    Hydra parses the override (1e-9 is a float, [a, b] a list, 'x' a string), DVC writes it with
    a YAML 1.2 writer, which writes a float as Python's repr (1e-09), and the project reads
    params.yaml with YAML 1.1, where a float without a dot is text: the round trip below gives
    what the params code then sees."""
    value = hydra_value(text)
    if isinstance(value, float):
        return yaml.safe_load(repr(value))
    if isinstance(value, list):
        return [yaml.safe_load(repr(v)) if isinstance(v, float) else v for v in value]
    return value


def overrides_in(tokens: list[str], where: str) -> list[Override]:
    found = []
    for flag, word in itertools.pairwise(tokens):
        if flag in ("-S", "--set-param") and "=" in word:
            key, _, text = word.partition("=")
            found.append(Override(where, key.strip(), text))
    return found


def shell_words(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # not shell after all (an unbalanced quote in prose-like code)
        return line.split()


def expand(line: str, variables: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced by the block's earlier assignments; others left as typed."""
    return VARIABLE.sub(lambda m: variables.get(m[1], m[0]), line)


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """Shell lines with their backslash continuations joined; (offset of the first, text)."""
    joined, start, current = [], 0, ""
    for offset, line in enumerate(lines):
        if not current:
            start = offset
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        joined.append((start, current + line))
        current = ""
    if current:
        joined.append((start, current))
    return joined


@dataclass(frozen=True)
class Command:
    """The overrides one shell command sets together, and the params.yaml it runs on: the
    project's, changed by any `params.yaml` snippet the page showed before it."""

    overrides: list[Override]
    params_yaml: dict[str, Any]


def params_snippet(lines: list[str]) -> dict[str, Any]:
    """A yaml block that says it is params.yaml (`# params.yaml: ...` on its first line): its
    blocks, which the page asks the reader to put in params.yaml. {} for any other block."""
    if not lines or "params.yaml" not in lines[0]:
        return {}
    snippet = yaml.safe_load("\n".join(lines)) or {}
    return snippet if isinstance(snippet, dict) else {}


def commands_in(page: Path) -> tuple[list[Command], list[Override]]:
    """(the shell commands of the page's code blocks, with variables defined earlier in the block
    expanded; the overrides in prose, one by one)."""
    text = page.read_text()
    prose, blocks = prose_and_code(text)
    commands: list[Command] = []
    snippet: dict[str, Any] = {}
    for first, language, lines in blocks:
        if language in ("yaml", "yml"):
            snippet = params_snippet(lines) or snippet
        if language not in SHELL:
            continue
        variables: dict[str, str] = {}
        for offset, line in logical_lines(lines):
            where = f"{rel(page)}:{first + 1 + offset}"
            words = shell_words(expand(line, variables))
            for word in words:
                assignment = ASSIGNMENT.match(word)
                if not assignment:
                    break
                variables[assignment[1]] = assignment[2]
                if "-S " in assignment[2]:
                    commands.append(Command(overrides_in(shell_words(assignment[2]), where), snippet))
            if found := overrides_in(words, where):
                commands.append(Command(found, snippet))
    singles = [
        override
        for number, text in paragraphs(prose)
        for _, span in INLINE_CODE.findall(text)
        for override in overrides_in(shell_words(span), f"{rel(page)}:{number}")
    ]
    return commands, singles


def field_adapter(key: str) -> TypeAdapter:
    block, _, name = key.partition(".")
    if block not in Params.model_fields or name not in Params.model_fields[block].annotation.model_fields:
        raise KeyError(key)
    info = Params.model_fields[block].annotation.model_fields[name]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)


def field_problem(override: Override) -> str | None:
    """Why one override is not a value of its key (None: it is); each value of a sweep counts."""
    if is_placeholder(override.key):
        return None
    try:
        adapter = field_adapter(override.key)
    except KeyError:
        return f"{override.where}: -S {override.key}=...: no such param"
    for text in split_top_level_commas(override.text):
        if is_placeholder(text):
            continue
        try:
            adapter.validate_python(as_dvc_writes(text))
        except (ValidationError, yaml.YAMLError) as exc:
            return f"{override.where}: -S {override.key}={text}: {str(exc).splitlines()[-1].strip()}"
    return None


def command_problem(command: Command, defaults: dict[str, Any]) -> str | None:
    """Why a command's overrides, applied together on params.yaml, are refused (None: accepted).
    A sweep is tried value by value; a command with a placeholder cannot be checked whole."""
    if any(is_placeholder(o.key) or is_placeholder(o.text) for o in command.overrides):
        return None
    choices = [[(o, v) for v in split_top_level_commas(o.text)] for o in command.overrides]
    for combination in itertools.product(*choices):
        raw = yaml.safe_load(yaml.safe_dump(defaults))
        for block, values in command.params_yaml.items():
            raw.setdefault(block, {}).update(values or {})
        for override, text in combination:
            block, _, name = override.key.partition(".")
            raw.setdefault(block, {})[name] = as_dvc_writes(text)
        try:
            from_dict(raw)
        except ParamError as exc:
            sets = " ".join(f"-S {o.key}={t}" for o, t in combination)
            return f"{command.overrides[0].where}: {sets}: {exc}"
    return None


def all_overrides() -> tuple[list[Command], list[Override]]:
    commands, singles = [], []
    for page in COMMAND_PAGES:
        page_commands, page_singles = commands_in(page)
        commands += page_commands
        singles += page_singles
    return commands, singles


def test_every_override_in_the_docs_is_a_value_of_a_known_param():
    commands, singles = all_overrides()
    overrides = [o for command in commands for o in command.overrides] + singles
    assert len(overrides) > 0
    problems = [p for o in overrides if (p := field_problem(o))]
    assert problems == []


def test_every_command_in_the_docs_sets_params_that_go_together():
    """Prose names flags one at a time ("it needs `-S occlusion.overlap=true` as well"), so only
    the commands of code blocks are checked whole."""
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    commands, _ = all_overrides()
    problems = [p for command in commands if (p := command_problem(command, defaults))]
    assert problems == []


def test_the_override_checks_catch_what_dvc_would_refuse(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Try `-S train.lrr=0.1` or `-S occlusion.ratio=1.5`, in general `-S <block>.<key>=<value>`.\n\n"
        "```bash\n"
        'SET="-S occlusion.ratio=0.4 \\\n -S occlusion.count=2"\n'
        "dvc exp run $SET\n"
        "dvc exp run --queue -S train.lr=0.001,0.002 -S train.resident_fraction=1e-9 -S data.sha256=<hash>\n"
        "dvc exp run -S train.augment='[flip, crop]'   # a list, not a sweep\n"
        "```\n\n"
        "```yaml\n# params.yaml: counts\nsplit: {train: 900, test: 100}\n```\n\n"
        "```bash\ndvc exp run -S split.train=800\n```\n"
    )
    commands, singles = commands_in(page)
    assert [(o.key, o.text) for o in singles] == [("train.lrr", "0.1"), ("occlusion.ratio", "1.5"), ("<block>.<key>", "<value>")]
    assert [field_problem(o) is None for o in singles] == [False, False, True]
    assert len(commands) == 5  # the variable's own definition, its use, and three commands
    assert [(o.key, o.text) for o in commands[1].overrides] == [("occlusion.ratio", "0.4"), ("occlusion.count", "2")]
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert "cannot fit without overlap" in command_problem(commands[1], defaults)
    assert command_problem(commands[2], defaults) is None  # a placeholder: not checkable whole
    assert all(field_problem(o) is None for o in commands[2].overrides + commands[3].overrides)
    # A count for train is refused on the shipped fractions, accepted on the page's params.yaml.
    assert command_problem(commands[4], defaults) is None
    assert "fractions" in command_problem(Command(commands[4].overrides, {}), defaults)
    assert as_dvc_writes("1e-9") == "1e-09" and as_dvc_writes("0.5") == 0.5 and as_dvc_writes("2") == 2
    assert as_dvc_writes("[flip, crop]") == ["flip", "crop"] and as_dvc_writes("models:/m@a") == "models:/m@a"
    assert split_top_level_commas("0.001,0.002") == ["0.001", "0.002"] and split_top_level_commas("[a, b]") == ["[a, b]"]


# --- LICENSE and CITATION.cff --------------------------------------------------------------


def project() -> dict[str, str]:
    """pyproject.toml's [project] name, version and license (read as text: tomllib is Python 3.11+)."""
    table = (ROOT / "pyproject.toml").read_text().split("[project]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^(name|version|license) = "([^"]*)"', table, flags=re.M))


def test_the_license_file_is_the_one_pyproject_declares():
    text = (ROOT / "LICENSE").read_text()
    assert project()["license"] == "MIT"
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text
    assert re.search(r"Copyright \(c\) \d{4} the vaeinpaint authors", text)


def test_citation_cff_is_valid_and_agrees_with_pyproject():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "version", "license", "references"):
        assert key in cff, f"CITATION.cff: {key} is required"
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == project()["version"], "CITATION.cff: version differs from pyproject.toml's"
    assert cff["license"] == project()["license"]
    assert all(isinstance(a, dict) and ("name" in a or "family-names" in a) for a in cff["authors"])
    study = cff["references"][0]
    assert study["title"] == "Image Inpainting with Variational Autoencoders" and study["year"] == 2020
    assert [a["family-names"] for a in study["authors"]] == ["Deesamutara", "Maggiore"]
