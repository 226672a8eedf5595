"""`vaeinpaint report`: finished experiments collected from a real `dvc exp`, the report rendered
from a hand-built experiments.json (the study's number beside ours, "not run", changed
params, the better classical fill, valid and reproducible PNGs), and the drift check of the
README's and docs' generated blocks against the committed results/experiments.json."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vaeinpaint.cli import app
from vaeinpaint.presets import load_presets
from vaeinpaint.report import check_files, fragments, update_files
from vaeinpaint.report.collect import collect, found_experiments
from vaeinpaint.report.markers import block, has_markers
from vaeinpaint.report.records import better_fill

from conftest import ROOT, run_env

PRESETS = load_presets(ROOT / "presets" / "experiments.yaml")


def png(size: int = 24, shade: int = 90) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), shade).save(out, format="PNG")
    return out.getvalue()


def scores(ssim: float, psnr: float, std: float = 0.05) -> dict:
    return {"ssim_mean": ssim, "ssim_std": std, "hole_psnr": psnr, "n": 100}


def record(name: str, ssim: float, **extra) -> dict:
    base = {
        "name": name,
        "rev": "workspace" if name == "workspace" else "0123456789abcdef0123456789abcdef01234567",
        "baseline": "89abcdef0123456789abcdef0123456789abcdef",
        "changed_params": {},
        "data": {"source": "url", "archive": "celeba-faces-10k.zip", "n_train": 9000, "n_test": 1000, "size": 100, "color": "gray"},
        "masks": {"shape": "square", "hole_share": 0.2025},
        "test": scores(ssim, 22.5, 0.0612),
        # biharmonic has the better hole PSNR, telea the better SSIM: the SSIM decides
        "baselines": {"corrupted": scores(0.7, 7.0), "biharmonic": scores(0.8702, 21.9), "telea": scores(0.8743, 20.65)},
        "hole_swd": {"model": 139.4484, "model_samples": 139.011, "biharmonic": 147.7506, "telea": 75.8477, "corrupted": 244.1},
        "diversity": {"samples": 4, "samples_hole_l1_pairwise": 0.0021, "best_of_k_ssim_mean": 0.8801},
        "train": {"epochs": 41, "training_minutes": 20.004, "stopped_early": True, "step_images_per_s": 5100.3, "batch_size": 256},
        "quality_by_minute": {
            "n": 200,
            "model": [{"minutes": m, "epoch": e, "ssim": s, "hole_psnr": 20.0} for m, e, s in [(1.0, 2, 0.8), (10.0, 20, ssim)]],
        },
        "grid": f"grids/{name}.png",
        "notes": [],
    }
    base["train"].update(precision="bf16", device="cuda", machine="NVIDIA H100 80GB HBM3")
    base.update(extra)
    return base


@pytest.fixture
def built(tmp_path) -> Path:
    """A hand-built report folder: experiments.json and its grids, as `report -o` writes them."""
    folder = tmp_path / "results"
    (folder / "grids").mkdir(parents=True)
    records = [
        record("workspace", 0.8812),
        record("faces-20", 0.8765),
        record("wider-holes", 0.8411, changed_params={"occlusion.ratio": 0.4, "data.url": "file:///data/celeba-faces-10k.zip"}),
    ]
    for r in records:
        (folder / r["grid"]).write_bytes(png(shade=len(r["name"]) * 10))
    (folder / "experiments.json").write_text(json.dumps({"experiments": records}, indent=2))
    return folder


def report(*args) -> object:
    return CliRunner().invoke(app, ["report", *map(str, args)])


def line_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


# ---------------------------------------------------------------------------- render


def test_the_study_row_shows_the_study_beside_ours_and_not_run_where_missing(built, tmp_path):
    result = report("--from", built / "experiments.json", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "results.md").read_text()
    faces = line_of(text, "| FFHQ, 20% | `faces-20` |")
    assert "| 0.9012 ± 0.054 | 0.8765 ± 0.0612 | 22.50 dB |" in faces
    assert "| telea 0.8743 / 20.65 dB | 20.2% |" in faces
    assert "41 epochs, 20.0 min (budget reached)" in faces and "NVIDIA H100 80GB HBM3" in faces
    assert "celeba-faces-10k.zip, 9000 + 1000, 100 px gray" in faces
    mixed = line_of(text, "| Animals-10, 20% | `mixed-20` |")
    assert mixed.count("not run") == 7 and "0.6869 ± 0.161" in mixed
    assert "| FFHQ, 40% | `faces-40` | 0.8692 ± 0.059 | not run" in text


def test_the_headline_is_the_first_study_row_run_against_its_better_fill(built, tmp_path):
    assert report("--from", built / "experiments.json", "-o", tmp_path / "out").exit_code == 0
    headline = (tmp_path / "out" / "results.md").read_text().split("<!-- report:headline -->")[1].split("<!--")[0]
    assert "`faces-20`" in headline and "**0.8765 ± 0.0612**" in headline and "22.50 dB" in headline
    assert "telea's 0.8743 and 20.65 dB" in headline and "NVIDIA H100 80GB HBM3" in headline and "0.9012 ± 0.054" in headline
    nothing = fragments({"experiments": []}, load_presets())["headline"]
    assert "None of the study's rows" in nothing


def test_other_experiments_show_their_changed_params(built, tmp_path):
    assert report("--from", built / "experiments.json", "-o", tmp_path / "out").exit_code == 0
    text = (tmp_path / "out" / "results.md").read_text()
    wider = line_of(text, "| `wider-holes` |")
    assert "`occlusion.ratio=0.4`" in wider and "`data.url=…/celeba-faces-10k.zip`" in wider
    assert "0.8411 ± 0.0612" in wider
    assert line_of(text, "| `workspace` |").count("| none |") == 1
    others = text.split("## Every other experiment")[1].split("## Training")[0]
    assert "`wider-holes`" in others and "`faces-20`" not in others  # a study row is in the study's table only


def test_the_better_fill_is_the_higher_ssim_and_never_the_damaged_input():
    r = record("x", 0.8)
    assert better_fill(r)[0] == "telea"
    r["baselines"]["corrupted"] = scores(0.99, 30.0)  # better than any fill, and still no fill
    assert better_fill(r)[0] == "telea"
    r["baselines"]["biharmonic"] = scores(0.8743, 21.9)  # a tie on SSIM: the hole PSNR decides
    assert better_fill(r)[0] == "biharmonic"
    assert better_fill({**r, "baselines": {"corrupted": scores(0.7, 7.0)}}) is None


def test_the_pngs_are_written_valid_and_the_same_twice(built, tmp_path):
    for out in (tmp_path / "a", tmp_path / "b"):
        assert report("--from", built / "experiments.json", "-o", out).exit_code == 0
    figure = (tmp_path / "a" / "quality_by_minute.png").read_bytes()
    with Image.open(io.BytesIO(figure)) as image:
        image.verify()
        assert image.size == (700, 450)
    assert figure == (tmp_path / "b" / "quality_by_minute.png").read_bytes()
    assert b"Software" not in figure and b"matplotlib" not in figure.lower()
    for name in ("workspace", "faces-20", "wider-holes"):
        assert (tmp_path / "a" / "grids" / f"{name}.png").read_bytes() == (built / "grids" / f"{name}.png").read_bytes()
    text = (tmp_path / "a" / "results.md").read_text()
    assert "![Restorations of faces-20](grids/faces-20.png)" in text and "](quality_by_minute.png)" in text
    assert text == (tmp_path / "b" / "results.md").read_text()


def test_a_missing_grid_is_a_note_not_a_broken_link(built, tmp_path):
    (built / "grids" / "wider-holes.png").unlink()
    assert report("--from", built / "experiments.json", "-o", tmp_path / "out").exit_code == 0
    text = (tmp_path / "out" / "results.md").read_text()
    assert "](grids/wider-holes.png)" not in text and "**`wider-holes`**: no sample grid." in text
    assert "- `wider-holes`: no sample grid: grids/wider-holes.png is missing" in text


def test_rerendering_in_place_keeps_the_folder(built):
    before = (built / "experiments.json").read_text()
    assert report("--from", built / "experiments.json", "-o", built).exit_code == 0
    assert (built / "experiments.json").read_text() == before and (built / "results.md").is_file()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--from", "{tmp}/nowhere/experiments.json", "-o", "{tmp}/out"], "nowhere/experiments.json: no such file"),
        (["-o", "{tmp}/out", "--project", "{tmp}"], "not a DVC repository"),
        (["--check"], "--check: name the files"),
        (["--from", "{tmp}/bad.json", "-o", "{tmp}/out"], "bad.json: no list `experiments`"),
    ],
    ids=["no-experiments-json", "no-dvc-repo", "check-without-files", "not-a-report"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    (tmp_path / "bad.json").write_text('{"runs": []}')
    result = report(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and words in result.stderr
    assert not (tmp_path / "out" / "results.md").exists()


# ----------------------------------------------------------------------------- drift


def marked_file(path: Path, names: list[str]) -> Path:
    path.write_text("# Our results\n\nSome prose.\n\n" + "\n\nMore prose.\n\n".join(block(n, "") for n in names) + "\n")
    return path


def test_a_block_edited_by_hand_is_reported(built, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    readme = marked_file(tmp_path / "README.md", ["study-table", "grids"])
    page = marked_file(docs / "results.md", ["experiments-table", "quality-figure"])
    source = built / "experiments.json"
    assert update_files([readme, page], source, PRESETS) == [readme, page]
    assert check_files([readme, page], source, PRESETS) == []
    assert "](results/grids/faces-20.png)" in readme.read_text()  # links from each file to the report's folder
    assert "](../results/quality_by_minute.png)" in page.read_text()
    readme.write_text(readme.read_text().replace("0.8765 ± 0.0612", "0.8799 ± 0.0612"))
    lines = check_files([readme, page], source, PRESETS)
    assert lines == [f"{readme}: report:study-table differs from {source} (vaeinpaint report --update {readme})"]
    result = report("--check", readme, page, "--from", source)
    assert result.exit_code == 1 and result.stdout.splitlines() == lines
    assert report("--update", readme, "--from", source).exit_code == 0
    assert report("--check", readme, page, "--from", source).exit_code == 0


def test_a_changed_result_is_drift_too(built, tmp_path):
    readme = marked_file(tmp_path / "README.md", ["training-table"])
    update_files([readme], built / "experiments.json", PRESETS)
    data = json.loads((built / "experiments.json").read_text())
    data["experiments"][1]["train"]["machine"] = "Intel(R) Xeon(R) Platinum 8488C, 2 threads"
    (built / "experiments.json").write_text(json.dumps(data))
    assert len(check_files([readme], built / "experiments.json", PRESETS)) == 1


def test_broken_markers_are_reported(built, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(block("study-tables", "x") + "\n\n<!-- report:grids -->\nno end\n")
    (line,) = check_files([readme], built / "experiments.json", PRESETS)
    assert "report:study-tables is no fragment" in line and "report:grids has no <!-- /report:grids -->" in line


def test_the_committed_results_match_every_marked_block():
    """The README and docs hold the report's fragments; the committed results/experiments.json
    must give them exactly (`vaeinpaint report --update README.md docs/*.md` after a new report)."""
    source = ROOT / "results" / "experiments.json"
    if not source.exists():
        pytest.skip("no results/experiments.json committed yet")
    files = [f for f in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if has_markers(f.read_text())]
    assert check_files(files, source, PRESETS) == []


# --------------------------------------------------------------------------- collect


def test_found_experiments_leaves_out_the_unfinished_and_names_each_once():
    data = lambda ratio: {"params": {"params.yaml": {"data": {"occlusion": {"ratio": ratio}}}}, "metrics": {}}  # noqa: E731
    run = lambda rev, name, state: {"revs": [{"rev": rev, "name": name, "data": data(0.4)}], "executor": {"state": state}, "name": name}  # noqa: E731
    show = [
        {"rev": "workspace", "data": data(0.2)},
        {"rev": "a" * 40, "data": data(0.2), "experiments": [run("b" * 40, "wide", "success"), run("c" * 40, "busy", "running")]},
        {"rev": "d" * 40, "data": data(0.3), "experiments": [run("e" * 40, "wide", "success")]},
    ]
    found = found_experiments(show)
    assert [(f.name, f.baseline[:1]) for f in found] == [("workspace", "a"), ("wide@bbbbbbb", "a"), ("wide@eeeeeee", "d")]
    assert found[1].params == {"occlusion.ratio": 0.4} and found[2].baseline_params == {"occlusion.ratio": 0.3}


STAGE = """
import json, pathlib, yaml
from PIL import Image
ratio = yaml.safe_load(open("params.yaml"))["occlusion"]["ratio"]
m = pathlib.Path("metrics"); m.mkdir(exist_ok=True)
s = lambda v: {"ssim_mean": v, "ssim_std": 0.05, "hole_psnr": 30 * v, "n": 10}
json.dump({"test": s(1 - ratio), "baselines": {"telea": {"test": s(0.9 - ratio)}, "corrupted": {"test": s(0.5)}}}, open(m / "evaluate.json", "w"))
json.dump({"epochs": 2, "training_minutes": 0.5, "device": "cpu", "machine": "a test CPU, 1 threads"}, open(m / "train.json", "w"))
json.dump({"shape": "square", "test": {"n": 10, "share_mean": ratio}}, open(m / "occlude.json", "w"))
(m / "quality_by_minute.csv").write_text(f"minutes,epoch,method,n,ssim,hole_psnr\\n0.2,1,model,10,0.5,10\\n0.5,2,model,10,{1 - ratio},12\\n0.5,2,telea,10,0.7,11\\n")
pathlib.Path("data/eval").mkdir(parents=True, exist_ok=True)
Image.new("L", (8, 8), int(255 * ratio)).save("data/eval/samples.png")
"""


def sh(project: Path, *args: str) -> None:
    out = subprocess.run(list(args), cwd=project, env=run_env(), capture_output=True, text=True)
    assert out.returncode == 0, f"{args}: {out.stdout[-2000:]}{out.stderr[-2000:]}"


@pytest.mark.slow
def test_collect_reads_the_workspace_and_a_real_dvc_experiment(tmp_path, monkeypatch):
    """A git + DVC repo with one stage that writes the metrics files, the probe's CSV and the
    grid from occlusion.ratio; one `dvc exp run -S occlusion.ratio=0.4`, the workspace back
    at the baseline."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "stage.py").write_text(STAGE)
    (project / "params.yaml").write_text("occlusion:\n  ratio: 0.2\ntrain:\n  epochs: 2\n")
    metrics = ["evaluate.json", "train.json", "occlude.json"]
    stage = {
        "cmd": f"{sys.executable} stage.py",
        "deps": ["stage.py"],
        "params": ["occlusion.ratio"],
        "outs": ["data/eval/samples.png"],
        "metrics": [{f"metrics/{m}": {"cache": False}} for m in metrics],
        "plots": [{"metrics/quality_by_minute.csv": {"cache": False}}],
    }
    (project / "dvc.yaml").write_text(json.dumps({"stages": {"evaluate": stage}}))
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"], ["git", "config", "user.name", "t"]):
        sh(project, *command)
    sh(project, "dvc", "init", "-q")
    sh(project, "dvc", "repro", "-q")
    sh(project, "git", "add", "-A")
    sh(project, "git", "commit", "-qm", "baseline")
    sh(project, "dvc", "exp", "run", "-q", "-n", "wider", "-S", "occlusion.ratio=0.4")
    sh(project, "git", "checkout", "--", "params.yaml", "dvc.lock", "metrics")
    sh(project, "dvc", "checkout", "--force")

    data, grids = collect(project)
    workspace, wider = data["experiments"]
    assert (workspace["name"], wider["name"]) == ("workspace", "wider")
    assert workspace["changed_params"] == {} and wider["changed_params"] == {"occlusion.ratio": 0.4}
    assert wider["test"]["ssim_mean"] == pytest.approx(0.6) and workspace["test"]["ssim_mean"] == pytest.approx(0.8)
    assert wider["masks"]["hole_share"] == 0.4 and wider["train"]["machine"] == "a test CPU, 1 threads"
    assert better_fill(wider)[0] == "telea" and wider["quality_by_minute"]["model"][-1]["ssim"] == pytest.approx(0.6)
    with Image.open(io.BytesIO(grids["grids/wider.png"])) as image:
        assert image.getpixel((0, 0)) == int(255 * 0.4)  # the experiment's grid, from DVC's cache
    assert grids["grids/workspace.png"] == (project / "data/eval/samples.png").read_bytes()

    monkeypatch.chdir(ROOT)  # the presets are the project's
    result = report("-o", tmp_path / "out", "--project", project)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "experiments.json").read_text())
    assert saved == json.loads(json.dumps(data)) and (tmp_path / "out" / "grids" / "wider.png").is_file()
    assert fragments(saved, PRESETS)["experiments-table"].count("`occlusion.ratio=0.4`") == 1
