"""The named experiments: presets/experiments.yaml, and `vaeinpaint experiments list / show /
queue`. DVC itself runs only in the slow test at the end; the others record what would be
called instead."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from vaeinpaint.apps import experiments
from vaeinpaint.cli import app
from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.params import load_params
from vaeinpaint.presets import Presets, archives, load_presets

from conftest import ROOT, copy_project, run_env, sha256

SHIPPED = load_presets(ROOT / "presets" / "experiments.yaml")
STUDY_ROWS = ["faces-20", "mixed-20", "faces-40", "faces-2x20", "faces-side"]
NAMES_IN_USE = experiments.names_in_use
SHARED_DATA = ROOT.parent / "shared" / "data"  # the stand-ins, beside the checkout where they are shared


def cli(*args) -> object:
    return CliRunner().invoke(app, ["experiments", *map(str, args)])


def hydra_parsed(setting: str) -> tuple[str, object]:
    """`key=value` as DVC's -S parses it (Hydra's override parser): the key and the value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_overrides([setting])[0]
    return override.key_or_group, override.value()


def with_archives(folder: Path, presets: Presets = SHIPPED) -> Path:
    """`folder` holding (empty) files under every archive name the presets read."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in presets.sources:
        for name in presets.experiments:
            for path in archives(presets.overrides(name, source, folder)).values():
                path.touch()
    return folder


@pytest.fixture(autouse=True)
def no_names_in_use(monkeypatch):
    """DVC's experiments and queue are not asked (the slow test asks them): no name is in use."""
    monkeypatch.setattr(experiments, "names_in_use", lambda names, root: {})


@pytest.fixture
def recorded(monkeypatch) -> list[list[str]]:
    """subprocess.run replaced: each call's arguments recorded, each answered with success."""
    calls: list[list[str]] = []

    def fake_run(argv, **kwargs):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, stdout="", stderr="")

    monkeypatch.setattr(experiments.subprocess, "run", fake_run)
    return calls


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder (dvc.yaml, the shipped params.yaml and presets) as the working directory."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(ROOT / "presets", root / "presets")
    monkeypatch.chdir(root)
    return root


def sets_of(argv: list[str]) -> dict[str, object]:
    """The -S settings of a dvc exp run command line, parsed as DVC parses them."""
    return dict(hydra_parsed(value) for flag, value in zip(argv, argv[1:]) if flag == "-S")


# --- the presets file ---------------------------------------------------------------------


def test_the_shipped_file_names_the_study_rows_with_their_figures():
    assert SHIPPED.study_names() == STUDY_ROWS
    assert SHIPPED.experiments["faces-20"].study.ssim == 0.9012 and SHIPPED.experiments["mixed-20"].set == "mixed"
    assert set(SHIPPED.sources) == {"paper", "standin"}


@pytest.mark.parametrize("source", ["paper", "standin"])
@pytest.mark.parametrize("name", list(SHIPPED.experiments))
def test_every_preset_on_every_source_is_accepted_as_dvc_sets_it(tmp_path, name, source):
    """The -S settings applied by DVC's own function to a copy of params.yaml (Hydra's parser,
    DVC's YAML writer), then read by the params code: each param holds the preset's value."""
    from dvc.utils.hydra import apply_overrides

    data_dir = with_archives(tmp_path / "data")
    overrides = SHIPPED.overrides(name, source, data_dir)
    argv = experiments.exp_run(name, overrides, queue=True)
    copy = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    apply_overrides(copy, [value for flag, value in zip(argv, argv[1:]) if flag == "-S"])
    flat = load_params(copy, base=tmp_path).flat()
    assert {key: flat[key] for key in overrides} == overrides


def test_a_file_url_with_its_sha256_is_read_by_the_downloader(tmp_path):
    """The stand-ins' way in: `{data_dir}` in a file:// URL, even a folder with a space and a
    percent sign in its name, reads back as the archive; a wrong hash is refused."""
    from vaeinpaint.data.downloads import retrieve

    data_dir = tmp_path / "my data 100%"
    archive = data_dir / "faces.zip"
    data_dir.mkdir()
    archive.write_bytes(fake_archive(3))
    presets = tiny_presets(sha256(archive))
    url = presets.overrides("tiny-side", "standin", data_dir)["data.url"]
    assert url.startswith("file:///") and " " not in url
    assert retrieve(url, sha256(archive)) == archive
    with pytest.raises(DataError, match="SHA-256"):
        retrieve(url, "0" * 64)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared stand-in archives are not beside this checkout")
@pytest.mark.parametrize("kind", ["faces", "mixed"])
def test_the_shipped_stand_in_hashes_are_the_archives(kind):
    data = SHIPPED.sources["standin"][kind]
    path = archives({"data.url": data["data.url"].format(data_dir=SHARED_DATA)})["data.url"]
    assert sha256(path) == data["data.sha256"]


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: p["experiments"]["faces-40"].update(colour="rgb"), "experiments.faces-40.colour: Extra inputs are not permitted"),
        (lambda p: p["experiments"]["faces-40"].update(set="animals"), "experiments.faces-40.set: Input should be 'faces' or 'mixed'"),
        (lambda p: p["experiments"]["faces-40"]["params"].update({"occlusion.ratoi": 0.4}), "occlusion.ratoi is not a param"),
        (lambda p: p["sources"]["paper"].pop("mixed"), "sources.paper: no mixed set"),
    ],
    ids=["unknown-key", "wrong-set", "unknown-param", "source-without-a-set"],
)
def test_a_bad_presets_file_is_one_line_naming_it(tmp_path, change, words):
    raw = yaml.safe_load((ROOT / "presets" / "experiments.yaml").read_text())
    change(raw)
    bad = tmp_path / "experiments.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = cli("list", "--presets", bad)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {bad}: ") and words in result.stderr, result.stderr


# --- list and show ------------------------------------------------------------------------


def test_list_shows_every_experiment_with_what_it_changes_and_the_study_figure():
    result = cli("list", "--presets", ROOT / "presets" / "experiments.yaml")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line and not line.startswith("every")}
    assert list(rows) == list(SHIPPED.experiments)
    assert "occlusion.ratio=0.4" in rows["faces-40"] and "0.8692" in rows["faces-40"]
    assert "0.9012 ± 0.054" in rows["faces-side"] and "occlusion.ratio_of=side" in rows["faces-side"]
    assert "0.9" not in rows["faces-strokes"]  # no study figure for a row beyond the study


@pytest.mark.parametrize("source", ["paper", "standin"])
@pytest.mark.parametrize("name", ["faces-20", "mixed-color-mixed-masks", "faces-side"])
def test_show_prints_a_command_whose_sets_are_the_presets_params(tmp_path, name, source):
    """Through the shell's quoting and Hydra's, even with a space and a quote in --data-dir."""
    data_dir = tmp_path / "Ana's data"
    result = cli("show", name, "--data", source, "--data-dir", data_dir, "--presets", ROOT / "presets" / "experiments.yaml")
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert argv[:5] == ["dvc", "exp", "run", "-n", name]
    assert sets_of(argv) == SHIPPED.overrides(name, source, data_dir)


@pytest.mark.parametrize("value", ["side", "/data/a b.zip", "0ba7dd", "true", "null", "1e-9", "a,b", "x:y", 'it\'s "x"'])
def test_text_values_reach_dvc_as_the_same_text(value):
    try:
        setting = f"data.path={experiments.hydra_value('data.path', value)}"
    except ParamError as error:
        assert "data.path" in str(error) and "'" in value and '"' in value
        return
    assert hydra_parsed(setting) == ("data.path", value)


# --- queue ----------------------------------------------------------------------------------


def test_queue_queues_each_named_experiment_with_its_params(project, tmp_path, recorded):
    data_dir = with_archives(tmp_path / "data")
    result = cli("queue", "faces-40", "mixed-20", "--data", "standin", "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert [argv[:8] for argv in recorded] == [
        [sys.executable, "-m", "dvc", "exp", "run", "--queue", "-n", n] for n in ("faces-40", "mixed-20")
    ]
    assert [sets_of(argv) for argv in recorded] == [SHIPPED.overrides(n, "standin", data_dir) for n in ("faces-40", "mixed-20")]
    assert "dvc queue start -j 1" in result.stdout


def test_queue_study_queues_the_study_rows(project, tmp_path, recorded):
    result = cli("queue", "--study", "--data", "paper", "--data-dir", with_archives(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert [argv[argv.index("-n") + 1] for argv in recorded] == STUDY_ROWS


def test_a_missing_archive_is_one_line_naming_it_and_nothing_is_queued(project, tmp_path, recorded):
    data_dir = with_archives(tmp_path / "data")
    (data_dir / "imagenette-mixed-3k.zip").unlink()
    result = cli("queue", "faces-20", "mixed-20", "--data", "standin", "--data-dir", data_dir)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {data_dir.resolve() / 'imagenette-mixed-3k.zip'}: no such file"), result.stderr
    assert recorded == []


def test_an_unknown_name_lists_the_known_ones(project, tmp_path, recorded):
    result = cli("queue", "faces-20", "faces-30", "--data", "standin", "--data-dir", with_archives(tmp_path / "data"))
    assert result.exit_code == 2 and "'faces-30': unknown (one of: faces-20, mixed-20, faces-40" in result.stderr
    assert recorded == []


def test_a_preset_the_params_code_refuses_names_the_preset_and_the_param(project, tmp_path, recorded):
    raw = yaml.safe_load((ROOT / "presets" / "experiments.yaml").read_text())
    raw["experiments"]["faces-40"]["params"]["occlusion.ratio"] = 1.5
    presets = tmp_path / "experiments.yaml"
    presets.write_text(yaml.safe_dump(raw))
    args = ["--data", "standin", "--data-dir", with_archives(tmp_path / "data"), "--presets", presets]
    result = cli("queue", "faces-20", "faces-40", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: experiment faces-40 (--data standin): occlusion.ratio: ")
    assert recorded == []


def test_a_name_dvc_already_has_is_one_line_and_nothing_is_queued(project, tmp_path, recorded, monkeypatch):
    monkeypatch.setattr(
        experiments, "names_in_use", lambda names, root: {"faces-40": "dvc exp remove faces-40"} if "faces-40" in names else {}
    )
    result = cli("queue", "faces-20", "faces-40", "--data", "standin", "--data-dir", with_archives(tmp_path / "data"))
    assert result.exit_code == 2 and result.stderr.startswith("error: experiment faces-40: DVC already has one of this name")
    assert "dvc exp remove faces-40" in result.stderr and recorded == []


def test_dvcs_own_refusal_is_one_line(project, tmp_path, monkeypatch):
    conflict = "ERROR: Experiment conflicts with existing experiment 'faces-20'. To overwrite the existing experiment run:\n\n\tdvc exp run -f ...\n"
    answer = lambda argv, **kw: subprocess.CompletedProcess(argv, 255, stdout="", stderr=conflict)  # noqa: E731
    monkeypatch.setattr(experiments.subprocess, "run", answer)
    result = cli("queue", "faces-20", "--data", "standin", "--data-dir", with_archives(tmp_path / "data"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "-n faces-20: ERROR: Experiment conflicts with existing experiment 'faces-20'" in result.stderr


def test_run_starts_each_experiment_from_params_yaml_as_it_was(project, tmp_path, monkeypatch):
    """A plain `dvc exp run` leaves its params in params.yaml: the next must not inherit them."""
    before = (project / "params.yaml").read_text()
    seen: list[str] = []

    def fake_dvc(argv, **kwargs):
        seen.append((project / "params.yaml").read_text())
        (project / "params.yaml").write_text(before.replace("count: 1 ", "count: 2 "))  # as the experiment leaves it
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(experiments.subprocess, "run", fake_dvc)
    result = cli("queue", "faces-2x20", "faces-40", "--run", "--data", "standin", "--data-dir", with_archives(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert seen == [before, before]


# --- for real: a tiny git + DVC repo --------------------------------------------------------


def fake_archive(n: int) -> bytes:
    """A zip of n small PNGs."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(n)
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(n):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(png, format="PNG")
            archive.writestr(f"images/{i:03d}.png", png.getvalue())
    return buffer.getvalue()


def tiny_presets(faces_sha256: str, mixed_sha256: str = "0" * 64) -> Presets:
    """One experiment, tiny-side, on stand-ins faces.zip and mixed.zip of `{data_dir}`."""
    faces = {
        "data.source": "url",
        "data.url": "file://{data_dir}/faces.zip",
        "data.sha256": faces_sha256,
        "split.train": 6,
        "split.test": 2,
    }
    mixed = {**faces, "data.url": "file://{data_dir}/mixed.zip", "data.sha256": mixed_sha256}
    experiment = {"about": "tiny, the published code's square", "set": "faces", "params": {"occlusion.ratio_of": "side"}}
    return Presets.model_validate(
        {"sources": {"standin": {"faces": faces, "mixed": mixed}}, "budget": {"train.epochs": 1}, "experiments": {"tiny-side": experiment}}
    )


@pytest.mark.slow
def test_queue_for_real_lists_the_experiment_with_its_params(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "names_in_use", NAMES_IN_USE)  # DVC is asked which names it has
    project = copy_project(tmp_path / "project", {"prepare": {"size": 32}, "model": {"width": 8, "latent_channels": 4}})
    data_dir = tmp_path / "archives"
    data_dir.mkdir()
    (data_dir / "faces.zip").write_bytes(fake_archive(8))
    (data_dir / "mixed.zip").write_bytes(fake_archive(8))
    presets = tiny_presets(sha256(data_dir / "faces.zip"), sha256(data_dir / "mixed.zip"))
    presets_file = tmp_path / "experiments.yaml"
    presets_file.write_text(yaml.safe_dump(presets.model_dump(exclude_none=True)))
    monkeypatch.chdir(project)
    result = cli("queue", "tiny-side", "--data", "standin", "--data-dir", data_dir, "--presets", presets_file)
    assert result.exit_code == 0, result.output

    sh = lambda *args: subprocess.run(args, cwd=project, env=run_env(), capture_output=True, text=True, check=True).stdout  # noqa: E731
    status = [line.split() for line in sh("dvc", "queue", "status").splitlines()]
    assert any("tiny-side" in row and "Queued" in row for row in status), status
    shown = json.loads(sh("dvc", "exp", "show", "--json"))
    queued = {rev["name"]: rev for row in shown for exp in (row.get("experiments") or []) for rev in exp.get("revs", [])}
    params = queued["tiny-side"]["data"]["params"]["params.yaml"]["data"]
    expected = presets.overrides("tiny-side", "standin", data_dir)
    assert params["data"]["url"] == expected["data.url"] and params["data"]["sha256"] == expected["data.sha256"]
    assert params["occlusion"]["ratio_of"] == "side" and params["train"]["epochs"] == 1 and params["split"]["train"] == 6
    assert yaml.safe_load((project / "params.yaml").read_text())["occlusion"]["ratio_of"] == "area"  # the workspace keeps its own

    again = cli("queue", "tiny-side", "--data", "standin", "--data-dir", data_dir, "--presets", presets_file)
    assert again.exit_code == 2 and again.stderr.count("\n") == 1, again.output
    assert (
        again.stderr
        == "error: experiment tiny-side: DVC already has one of this name on this commit (free it: dvc queue remove tiny-side)\n"
    )

    from dvc.repo.experiments.refs import ExpRefInfo  # a finished experiment is a git ref DVC made

    head = sh("git", "rev-parse", "HEAD").strip()
    sh("git", "update-ref", str(ExpRefInfo(head, "tiny-done")), head)
    assert NAMES_IN_USE(["tiny-done", "tiny-new"], project) == {"tiny-done": "dvc exp remove tiny-done"}


def test_the_docs_table_lists_every_preset_with_what_it_changes():
    """docs/experiments.md's table is written by hand: it must name every preset and its params."""
    text = (ROOT / "docs" / "experiments.md").read_text()
    for name, experiment in load_presets().experiments.items():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/experiments.md has no row for {name}"
        assert f"| {experiment.set} |" in row
        for key, value in experiment.params.items():
            assert f"{key}={value}" in row, (name, key)
