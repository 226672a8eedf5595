import pytest
import yaml

from vaeinpaint.errors import ParamError
from vaeinpaint.params import SplitParams, load_params, split_sizes, square_side

from conftest import ROOT


def write(tmp_path, blocks: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(blocks))
    return path


def test_project_params_file_is_valid():
    params = load_params(ROOT / "params.yaml", base=ROOT)
    assert params.prepare.size == 100
    assert params.flat()["occlusion.ratio"] == params.occlusion.ratio


def test_defaults_fill_missing_blocks(tmp_path):
    params = load_params(write(tmp_path, {"occlusion": {"ratio": 0.4}}), base=tmp_path)
    assert params.occlusion.ratio == 0.4 and params.occlusion.count == 1
    assert params.data.source == "builtin"


@pytest.mark.parametrize(
    "blocks, names_param, says",
    [
        ({"occlusion": {"ratio": 1.5}}, "occlusion.ratio", "(0, 1)"),
        ({"occlusion": {"ratio": 0}}, "occlusion.ratio", "(0, 1)"),
        ({"occlusion": {"count": 0}}, "occlusion.count", ">= 1"),
        ({"occlusion": {"count": 5, "ratio": 0.2}}, "occlusion.count", "cannot fit without overlap"),
        ({"occlusion": {"ratio_of": "perimeter"}}, "occlusion.ratio_of", "unknown value"),
        ({"data": {"source": "imagenet"}}, "data.source", "unknown value"),
        ({"data": {"source": "folder", "path": "no/such/folder"}}, "data.path", "does not exist"),
        ({"data": {"source": "folder"}}, "data.path", "required"),
        ({"data": {"source": "url", "url": "http://x/a.zip"}}, "data.sha256", "required"),
        ({"data": {"sha256": "abc"}}, "data.sha256", "64 hex digits"),
        ({"split": {"train": 0.8, "test": 0.3}}, "split.train + split.test", "> 1"),
        ({"split": {"train": 100, "test": 0.1}}, "split.train/split.test", "both as fractions or both as counts"),
        ({"split": {"train": 10.5, "test": 2}}, "split.train", "whole number"),
        ({"train": {"epochs": "many"}}, "train.epochs", "expected an integer"),
        ({"train": {"device": "tpu"}}, "train.device", "unknown value"),
        ({"train": {"lr": -1}}, "train.lr", "> 0"),
        ({"train": {"compile": "yes"}}, "train.compile", "true or false"),
        ({"train": {"precision": "fp8"}}, "train.precision", "unknown value"),
        ({"train": {"nodes": 0}}, "train.nodes", ">= 1"),
        ({"train": {"nodes": 2}}, "train.rdzv_endpoint", "required when train.nodes > 1"),
        ({"train": {"nodes": 2, "rdzv_endpoint": "node0"}}, "train.rdzv_endpoint", "host:port"),
        ({"train": {"nodes": 2, "rdzv_endpoint": "node0:http"}}, "train.rdzv_endpoint", "host:port"),
        ({"train": {"sync_bn": "on"}}, "train.sync_bn", "true or false"),
        ({"model": {"arch": "paper"}, "prepare": {"size": 64}}, "model.arch", "100x100"),
        ({"occlusion": {"colour": "red"}}, "occlusion.colour", "unknown param"),
        ({"baselines": {"methods": ["biharmonic", "magic"]}}, "baselines.methods", "unknown value"),
        ({"occlusion": {"shape": "blobs"}}, "occlusion.shape", "unknown value"),
        ({"occlusion": {"position": "corner"}}, "occlusion.position", "unknown value"),
        ({"occlusion": {"position": "center", "count": 2}}, "occlusion.position", "'center' places one box"),
        ({"occlusion": {"shape": "strokes", "position": "center"}}, "occlusion.position", "not strokes"),
        ({"occlusion": {"shape": "mixed", "count": 2}}, "occlusion.count", "not mixed"),
        ({"occlusion": {"shape": "files"}}, "occlusion.path", "required"),
        ({"occlusion": {"shape": "files", "path": "no/such/masks"}}, "occlusion.path", "does not exist"),
        ({"occlusion": {"shape": "strokes", "ratio": 0.8}}, "occlusion.ratio", "strokes reach only"),
        ({"occlusion": {"shape": "strokes", "ratio": 0.3, "strokes": 1}}, "occlusion.ratio", "strokes reach only"),
        ({"occlusion": {"shape": "rectangle", "ratio_of": "side"}}, "occlusion.ratio_of", "squares"),
        ({"occlusion": {"shape": "rectangle", "aspect": 0.5}}, "occlusion.aspect", ">= 1"),
        ({"occlusion": {"shape": "strokes", "stroke_width": 0}}, "occlusion.stroke_width", "(0, 1]"),
        ({"model": {"head": "deconv"}}, "model.head", "unknown value"),
        ({"model": {"context_kind": "fft"}}, "model.context_kind", "unknown value"),
        ({"model": {"context": -1}}, "model.context", ">= 0"),
        ({"train": {"ema": 1.0}}, "train.ema", "[0, 1)"),
        ({"train": {"probe_points": -1}}, "train.probe_points", ">= 0"),
        ({"train": {"probe_images": 0}}, "train.probe_images", "> 0"),
    ],
)
def test_bad_values_name_the_param(tmp_path, blocks, names_param, says):
    with pytest.raises(ParamError) as err:
        load_params(write(tmp_path, blocks), base=tmp_path)
    message = str(err.value)
    assert message.startswith(names_param), message
    assert says in message
    assert "\n" not in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("occlusion: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(bad)


def test_relative_folder_is_resolved_against_the_project_root(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(tmp_path, {"data": {"source": "folder", "path": "photos"}})
    assert load_params(path, base=tmp_path).data.path == "photos"
    with pytest.raises(ParamError, match="^data.path: photos does not exist"):
        load_params(path, base=elsewhere)


def test_square_side_area_and_side():
    assert square_side(100, 0.2, "area") == 45  # sqrt(0.2 * 100 * 100) = 44.7
    assert square_side(100, 0.4, "area") == 63
    assert square_side(100, 0.2, "side") == 20  # the study's published code


def test_split_sizes():
    assert split_sizes(SplitParams(train=0.9, test=0.1), 100) == (90, 10)
    assert split_sizes(SplitParams(train=0.5, test=0.1), 100) == (50, 10)
    assert split_sizes(SplitParams(train=25000, test=2000), 30000) == (25000, 2000)
    with pytest.raises(ParamError, match=r"^split.train \+ split.test: .* only 100"):
        split_sizes(SplitParams(train=90, test=20), 100)
    with pytest.raises(ParamError, match="at least one"):
        split_sizes(SplitParams(train=0.9, test=0.01), 10)


def test_shipped_params_file_equals_the_code_defaults():
    """The defaults live twice (params.yaml for DVC, the dataclasses for code such as the
    benchmark and `vaeinpaint inpaint`): they must not drift apart."""
    from vaeinpaint.params import Params

    assert load_params(ROOT / "params.yaml", base=ROOT) == Params()


def test_mask_params_that_fit_are_accepted(tmp_path):
    (tmp_path / "masks").mkdir()
    for occlusion in (
        {"shape": "strokes", "ratio": 0.45},
        {"shape": "mixed", "ratio": 0.3},
        {"shape": "rectangle", "count": 3, "ratio": 0.1},
        {"shape": "files", "path": "masks"},
        {"position": "center", "ratio_of": "side"},
    ):
        assert load_params(write(tmp_path, {"occlusion": occlusion}), base=tmp_path).occlusion.shape == occlusion.get("shape", "square")
