import hashlib

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaeinpaint.data.split import assign_split
from vaeinpaint.errors import ParamError
from vaeinpaint.params import SplitParams


def index_of(n: int, start: int = 0) -> pd.DataFrame:
    hashes = [hashlib.sha256(f"image-{i}".encode()).hexdigest() for i in range(start, start + n)]
    return pd.DataFrame({"id": [h[:16] for h in hashes], "row": range(n), "sha256": hashes})


def assignment(split: pd.DataFrame) -> dict[str, str]:
    return dict(zip(split["id"], split["subset"]))


def test_counts_and_fractions():
    split = assign_split(index_of(200), SplitParams(train=0.8, test=0.1))
    assert (split["subset"] == "train").sum() == 160
    assert (split["subset"] == "test").sum() == 20
    split = assign_split(index_of(200), SplitParams(train=50, test=30))
    assert split["subset"].value_counts().to_dict() == {"train": 50, "test": 30}
    assert split["id"].is_unique


def test_same_inputs_give_byte_identical_output(tmp_path):
    params = SplitParams(train=0.7, test=0.3, seed=3)
    for name in ("a.csv", "b.csv"):
        assign_split(index_of(300), params).to_csv(tmp_path / name, index=False, lineterminator="\n")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_split_ignores_file_order():
    index = index_of(100)
    shuffled = index.sample(frac=1, random_state=1).reset_index(drop=True).assign(row=range(100))
    params = SplitParams(train=0.8, test=0.2)
    assert assignment(assign_split(index, params)) == assignment(assign_split(shuffled, params))


def test_seed_changes_the_split():
    a = assignment(assign_split(index_of(200), SplitParams(train=0.5, test=0.5, seed=0)))
    b = assignment(assign_split(index_of(200), SplitParams(train=0.5, test=0.5, seed=1)))
    assert a.keys() == b.keys() and a != b


@pytest.mark.parametrize("params", [SplitParams(train=0.8, test=0.2), SplitParams(train=150, test=40)])
def test_adding_one_image_does_not_reshuffle(params):
    before = assignment(assign_split(index_of(200), params))
    grown = pd.concat([index_of(200), index_of(1, start=999).assign(row=200)], ignore_index=True)
    after = assignment(assign_split(grown, params))
    common = before.keys() & after.keys()
    moved = [i for i in common if before[i] != after[i]]
    # At most one image crosses each boundary (test|train, train|unused).
    assert len(moved) <= 2
    assert len(common) >= len(before) - 1


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=12, max_value=150),
    additions=st.integers(min_value=1, max_value=25),
    first=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(min_value=0, max_value=5),
    sizes=st.one_of(
        st.tuples(st.sampled_from([0.5, 0.7, 0.8, 0.9]), st.sampled_from([0.05, 0.1, 0.2])).filter(lambda s: s[0] + s[1] <= 1),
        st.tuples(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=5)),
    ),
)
def test_each_added_image_moves_at_most_one_other_in_or_out_of_each_subset(start, additions, first, seed, sizes):
    # Grow a set one image at a time (a user adding photos to a folder, fractions or counts,
    # with or without unused images): after each addition, each of test and train has gained
    # at most one of the earlier images and lost at most one.
    params = SplitParams(train=sizes[0], test=sizes[1], seed=seed)
    index = index_of(start, start=first)
    before = assignment(assign_split(index, params))
    for n in range(start, start + additions):
        index = pd.concat([index, index_of(1, start=first + n).assign(row=n)], ignore_index=True)
        after = assignment(assign_split(index, params))
        earlier = index["id"].iloc[:-1]
        for subset in ("test", "train"):
            joined = sum(before.get(i) != subset and after.get(i) == subset for i in earlier)
            left = sum(before.get(i) == subset and after.get(i) != subset for i in earlier)
            assert joined <= 1 and left <= 1, (n, subset, joined, left)
        before = after


def test_too_few_images_is_a_param_error():
    with pytest.raises(ParamError, match="only 10"):
        assign_split(index_of(10), SplitParams(train=8, test=5))
