"""Archive sources (`url`, `ffhq`, `animals10`): downloads and safe extraction.

Placeholder seam until the data issue lands: every function refuses with a clear error.
"""

from __future__ import annotations

from pathlib import Path

from vaeinpaint.errors import DataError
from vaeinpaint.params import DataParams


def fetch_url(params: DataParams, dest: Path, base: Path) -> dict:
    raise DataError("data.source: 'url' is not available yet")


def fetch_ffhq(params: DataParams, dest: Path, base: Path) -> dict:
    raise DataError("data.source: 'ffhq' is not available yet")


def fetch_animals10(params: DataParams, dest: Path, base: Path) -> dict:
    raise DataError("data.source: 'animals10' is not available yet")
