"""Deterministic, stable train/test split.

Each image gets a key: the SHA-256 of `"{seed}:{content sha256}"`. Images are ranked by
key; the first `n_test` go to test, the last `n_train` to train, and those in between (if
any) are unused. The key depends only on the image's own bytes and the seed, so the split
does not depend on file names or order, and adding one image moves at most one other image
into or out of each subset instead of reshuffling the rest. (Train is taken from the end so
that each subset has one boundary that moves by at most one place per added image; taken
right after test, its far boundary would move by two whenever both sizes grow.)
"""

from __future__ import annotations

import hashlib

import pandas as pd

from vaeinpaint.params import SplitParams, split_sizes

SUBSETS = ("train", "test")


def split_key(seed: int, sha256: str) -> str:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()


def assign_split(index: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """`index` (id, row, sha256, ...) -> a table of id, row, subset for the images used,
    ordered by subset (train, test) then row. Raises ParamError if the data is too small."""
    n_train, n_test = split_sizes(params, len(index))
    keys = index["sha256"].map(lambda h: split_key(params.seed, h))
    ranked = index.assign(key=keys).sort_values("key", kind="stable")
    subset = ["test"] * n_test + [""] * (len(index) - n_test - n_train) + ["train"] * n_train
    ranked = ranked.assign(subset=subset)
    chosen = ranked[ranked["subset"] != ""]
    chosen = chosen.assign(order=chosen["subset"].map(SUBSETS.index))
    chosen = chosen.sort_values(["order", "row"], kind="stable")
    return chosen[["id", "row", "subset"]].reset_index(drop=True)


def rows_of(split: pd.DataFrame, subset: str) -> list[int]:
    return split.loc[split["subset"] == subset, "row"].tolist()


def ids_of(split: pd.DataFrame, subset: str) -> list[str]:
    return split.loc[split["subset"] == subset, "id"].tolist()
