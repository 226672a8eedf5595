"""Generated blocks inside hand-written markdown: the README and docs hold the report's
fragments between `<!-- report:NAME -->` and `<!-- /report:NAME -->`. `drift` says which
blocks differ from what the committed experiments.json gives (a number edited by hand, or
results that moved on without the prose), `update` rewrites them. The markers are HTML
comments, so they show nowhere on a rendered page."""

from __future__ import annotations

import re
from pathlib import Path

from vaeinpaint.errors import ParamError

OPENING = re.compile(r"<!-- report:(?P<name>[A-Za-z0-9_-]+) -->")
BLOCK = re.compile(r"<!-- report:(?P<name>[A-Za-z0-9_-]+) -->\n(?P<body>.*?)<!-- /report:(?P=name) -->", re.S)


def block(name: str, text: str) -> str:
    """A fragment between its markers, as a file holds it."""
    return f"<!-- report:{name} -->\n{text.rstrip()}\n<!-- /report:{name} -->"


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise ParamError(f"{path}: cannot be read ({error.strerror or error})") from error


def problems(text: str, fragments: dict[str, str]) -> list[str]:
    """What is wrong with the markers themselves: a fragment name that does not exist, an opening
    marker without its closing one."""
    found = []
    closed = {m.start() for m in BLOCK.finditer(text)}
    for opening in OPENING.finditer(text):
        name = opening["name"]
        if name not in fragments:
            found.append(f"report:{name} is no fragment (one of: {', '.join(fragments)})")
        elif opening.start() not in closed:
            found.append(f"report:{name} has no <!-- /report:{name} --> after it")
    return found


def differing(text: str, fragments: dict[str, str]) -> list[str]:
    """The names of the marked blocks whose content is not the fragment's."""
    return [m["name"] for m in BLOCK.finditer(text) if m["name"] in fragments and m["body"] != fragments[m["name"]].rstrip() + "\n"]


def drift(path: Path, fragments: dict[str, str], source: str) -> str | None:
    """One line if `path`'s marked blocks differ from `fragments` (made from `source`) or its
    markers are broken, else None."""
    text = read(path)
    wrong = problems(text, fragments)
    if wrong:
        return f"{path}: {'; '.join(wrong)}"
    names = differing(text, fragments)
    if names:
        listed = ", ".join(f"report:{name}" for name in dict.fromkeys(names))
        verb = "differs" if len(set(names)) == 1 else "differ"
        return f"{path}: {listed} {verb} from {source} (vaeinpaint report --update {path})"
    return None


def update(text: str, fragments: dict[str, str]) -> str:
    """`text` with every marked block holding its fragment."""
    return BLOCK.sub(lambda m: block(m["name"], fragments[m["name"]]) if m["name"] in fragments else m[0], text)


def has_markers(text: str) -> bool:
    return OPENING.search(text) is not None
