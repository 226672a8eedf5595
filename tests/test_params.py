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
        ({"model": {"prior": "gaussian"}}, "model.prior", "unknown value"),
        ({"model": {"arch": "paper", "prior": "learned"}}, "model.prior", "needs model.arch: inpaint"),
        ({"train": {"free_bits": -0.5}}, "train.free_bits", ">= 0"),
        ({"train": {"generative_weight": "x"}}, "train.generative_weight", "expected a number"),
        ({"evaluate": {"samples": "many"}}, "evaluate.samples", "expected auto or a whole number >= 0"),
        ({"evaluate": {"samples": -2}}, "evaluate.samples", "expected auto or a whole number >= 0"),
        ({"evaluate": {"samples": 2.5}}, "evaluate.samples", "expected auto or a whole number >= 0"),
        ({"train": {"kl_weight": "heavy"}}, "train.kl_weight", "expected auto or a number >= 0"),
        ({"train": {"kl_weight": -0.1}}, "train.kl_weight", "expected auto or a number >= 0"),
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
    """The defaults live twice (params.yaml for DVC, the pydantic models for code such as the
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


# --- the pydantic models: number forms, one error per block, path checks on request ----


@pytest.mark.parametrize("written", ["resident_fraction: 1e-09", "resident_fraction: '1e-09'", 'resident_fraction: "1e-9"'])
def test_a_float_as_dvc_writes_it_is_a_number(tmp_path, written):
    """YAML 1.1 needs a dot in a float: `1e-09`, as DVC writes it, is read as the string '1e-09'."""
    path = tmp_path / "params.yaml"
    path.write_text(f"train:\n  {written}\n")
    assert yaml.safe_load(path.read_text())["train"]["resident_fraction"] in ("1e-09", "1e-9")
    value = load_params(path, base=tmp_path).train.resident_fraction
    assert value == 1e-09 and type(value) is float


def test_numbers_in_any_form_where_a_number_is_meant():
    from vaeinpaint.params import from_dict

    params = from_dict(
        {"occlusion": {"ratio": "0.5"}, "train": {"lr": 1, "epochs": 2.0, "batch_size": "16"}, "split": {"train": 50, "test": 30}}
    )
    assert params.occlusion.ratio == 0.5 and type(params.occlusion.ratio) is float
    assert params.train.lr == 1.0 and type(params.train.lr) is float
    assert params.train.epochs == 2 and type(params.train.epochs) is int
    assert params.train.batch_size == 16 and type(params.train.batch_size) is int
    assert (params.split.train, params.split.test) == (50.0, 30.0)


@pytest.mark.parametrize(
    "blocks, message",
    [
        ({"train": {"epochs": 2.5}}, "train.epochs: expected an integer, got 2.5"),
        ({"train": {"epochs": True}}, "train.epochs: expected an integer, got True"),
        ({"train": {"lr": float("inf")}}, "train.lr: expected a finite number, got inf"),  # YAML's .inf
        ({"train": {"lr": "-inf"}}, "train.lr: expected a finite number, got '-inf'"),
        ({"train": {"lr": float("nan")}}, "train.lr: expected a finite number, got nan"),
        ({"train": {"lr": "fast"}}, "train.lr: expected a number, got 'fast'"),
        ({"train": {"lr": False}}, "train.lr: expected a number, got False"),
        ({"train": {"compile": 1}}, "train.compile: expected true or false, got 1"),
        ({"train": {"sync_bn": "true"}}, "train.sync_bn: expected true or false, got 'true'"),
        ({"train": {"augment": 5}}, "train.augment: expected none, flip, crop, flip+crop or a list of them, got 5"),
        ({"train": {"resident_fraction": "1e-09", "lr": "-1e-3"}}, "train.lr: must be > 0, got -0.001"),
    ],
)
def test_numbers_and_flags_refused_name_the_param(blocks, message):
    from vaeinpaint.params import from_dict

    with pytest.raises(ParamError) as err:
        from_dict(blocks)
    assert str(err.value) == message


# One error per block, the whole line: pydantic's errors (bounds, unknown values, unknown
# keys, types) and the rules' alike come out as `block.key: message`.
ONE_PER_BLOCK = [
    ({"data": {"limit": -1}}, "data.limit: must be >= 0, got -1"),
    ({"prepare": {"size": 16}}, "prepare.size: must be between 32 and 512 pixels, got 16"),
    ({"prepare": {"fit": "pad"}}, "prepare.fit: unknown value 'pad' (expected one of: stretch, center-crop)"),
    ({"split": {"train": 0.8, "test": 0.3}}, "split.train + split.test: fractions add up to 1.1 > 1"),
    ({"split": {"test": 0}}, "split.test: must be > 0, got 0.0"),
    ({"occlusion": {"ratio": 1.5}}, "occlusion.ratio: must be in (0, 1), got 1.5"),
    ({"occlusion": {"stroke_width": "1.5"}}, "occlusion.stroke_width: must be in (0, 1] (a share of the image's shorter side), got 1.5"),
    ({"model": {"width": 0}}, "model.width: must be > 0, got 0"),
    ({"model": {"skips": "no"}}, "model.skips: expected true or false, got 'no'"),
    ({"train": {"val_fraction": 0.5}}, "train.val_fraction: must be in [0, 0.5), got 0.5"),
    ({"train": {"ema": 1}}, "train.ema: the moving average's decay must be in [0, 1) (0: off), got 1.0"),
    ({"train": {"resident_fraction": 0}}, "train.resident_fraction: must be in (0, 1], got 0.0"),
    (
        {"baselines": {"methods": "telea, magic"}},
        "baselines.methods: unknown value 'magic' (expected one of: corrupted, biharmonic, telea)",
    ),
    ({"baselines": {"methods": 5}}, "baselines.methods: expected a list, got 5"),
    ({"evaluate": {"batch_size": 0}}, "evaluate.batch_size: must be > 0, got 0"),
    ({"evaluate": {"model": "s3://bucket/model.pt"}}, "evaluate.model: expected a checkpoint path, runs:/RUN_ID/model"),
    ({"evaluate": {"colour": 1}}, "evaluate.colour: unknown param (known: batch_size, grid_images, samples, model)"),
    ({"evaluate": [1, 2]}, "evaluate: expected a mapping, got [1, 2]"),
    ({"evalute": {"samples": 2}}, "evalute: unknown block (known: data, prepare, split, occlusion, model, train, baselines, evaluate)"),
]


@pytest.mark.parametrize("blocks, message", ONE_PER_BLOCK)
def test_each_block_error_is_one_line_naming_the_param(blocks, message):
    from pydantic import ValidationError

    from vaeinpaint.params import Params, from_dict, param_error

    with pytest.raises(ValidationError) as err:
        Params.model_validate(blocks)
    assert str(param_error(err.value, Params)).startswith(message)
    with pytest.raises(ParamError) as err:
        from_dict(blocks)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_empty_keys_and_blocks_take_the_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("occlusion:\n  ratio:\ntrain:\nmodel: {}\n")
    from vaeinpaint.params import Params

    assert load_params(path, base=tmp_path) == Params()


def test_lists_and_comma_separated_methods_are_the_same():
    from vaeinpaint.params import from_dict

    assert from_dict({"baselines": {"methods": "telea, corrupted"}}).baselines.methods == ("telea", "corrupted")
    assert from_dict({"baselines": {"methods": ["telea"]}}).baselines.methods == ("telea",)


def test_paths_are_checked_only_when_the_context_asks(tmp_path):
    from pydantic import ValidationError

    from vaeinpaint.params import Params, from_dict, validate

    raw = {"data": {"source": "folder", "path": "photos"}, "evaluate": {"model": "model.pt"}}
    assert Params.model_validate(raw).data.path == "photos"  # no context: nothing on disk is looked at
    assert from_dict(raw).evaluate.model == "model.pt"
    with pytest.raises(ValidationError, match="photos does not exist"):
        Params.model_validate(raw, context={"check_paths": True, "base": tmp_path})
    (tmp_path / "photos").mkdir()
    with pytest.raises(ParamError, match="^evaluate.model: model.pt does not exist"):
        validate(from_dict(raw), base=tmp_path)
    (tmp_path / "model.pt").write_bytes(b"")
    validate(from_dict(raw), base=tmp_path)
    validate(from_dict(raw), check_paths=False, base=tmp_path / "elsewhere")


def test_keyword_construction_and_copies():
    from pydantic import ValidationError

    from vaeinpaint.params import ModelParams, OcclusionParams, Params

    assert OcclusionParams(shape="strokes", ratio=0.3).shape == "strokes"
    assert ModelParams(width=8).model_dump()["width"] == 8
    with pytest.raises(ValidationError):
        OcclusionParams(ratio=1.5)
    params = Params()
    with pytest.raises(ValidationError):
        params.occlusion.ratio = 0.5  # frozen, as the dataclasses were
    copy = params.model_copy(update={"model": params.model.model_copy(update={"width": 8})})
    assert copy.model.width == 8 and params.model.width == 24


def test_params_imports_nothing_of_the_masks_package():
    """params <-> masks was an import circle (the stroke rule needed masks.strokes): params'
    modules import only vaeinpaint.errors, vaeinpaint.paths and their own package."""
    import ast
    import subprocess
    import sys

    allowed = ("vaeinpaint.errors", "vaeinpaint.paths", "vaeinpaint.params")
    for module in (ROOT / "src/vaeinpaint/params").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith("vaeinpaint") or name.startswith(allowed), f"{module.name} imports {name}"
    code = (
        "import sys; from vaeinpaint.params import from_dict; "
        "from_dict({'prepare': {'size': 32}, 'occlusion': {'shape': 'strokes', 'ratio': 0.3}}); "
        "assert not [m for m in sys.modules if m.startswith('vaeinpaint.masks')], sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_evaluate_samples_auto_resolves_by_the_checkpoints_prior():
    from vaeinpaint.params import from_dict, resolve_samples

    assert from_dict({}).evaluate.samples == "auto"
    assert resolve_samples("auto", "standard") == 4 and resolve_samples("auto", "learned") == 8
    assert from_dict({"evaluate": {"samples": "6"}}).evaluate.samples == 6
    assert resolve_samples(from_dict({"evaluate": {"samples": 0}}).evaluate.samples, "learned") == 0  # off, whatever the prior


def test_kl_weight_auto_resolves_by_the_prior_and_a_number_wins():
    from vaeinpaint.params import from_dict, resolve_kl_weight

    assert from_dict({}).train.kl_weight == "auto"
    assert resolve_kl_weight("auto", "standard") == 1e-3  # the study's reproduction, as before the param had auto
    assert resolve_kl_weight("auto", "learned") == 30.0
    # DVC writes -S train.kl_weight=1e-9 as 1e-09, which YAML reads as a string
    assert from_dict({"train": {"kl_weight": "1e-09"}}).train.kl_weight == 1e-9
    assert resolve_kl_weight(from_dict({"train": {"kl_weight": 0.5}}).train.kl_weight, "learned") == 0.5
