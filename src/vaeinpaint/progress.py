"""Progress bars for long steps: shown on a terminal, silent in logs and CI."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    if os.environ.get("VAEINPAINT_PROGRESS") in ("0", "1"):
        return os.environ["VAEINPAINT_PROGRESS"] == "1"
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], **kwargs) -> Iterable[T]:
    """tqdm over `iterable`, disabled when stderr is not a terminal (VAEINPAINT_PROGRESS=1 forces it)."""
    return tqdm(iterable, disable=not progress_enabled(), dynamic_ncols=True, leave=False, **kwargs)
