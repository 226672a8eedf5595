"""DVC stage `evaluate`: restore train and test, score them beside the baselines, also by hole
size; on test, K draws from the latent (diversity, best of K, also by hole size) and the realism
of the holes' fills (sliced Wasserstein distance of Laplacian patches, model and fills alike);
log to MLflow.

The model is the pipeline's checkpoint, or `evaluate.model` (a checkpoint path or an MLflow
model URI); the latter's scores go to a run of their own, not to the training run.
"""

import logging
from pathlib import Path

import pandas as pd

from vaeinpaint import paths, tracking
from vaeinpaint.console import run_stage
from vaeinpaint.data.dataset import load_subset, read_baseline_scores, read_images, read_mask_shares, read_masks, read_split
from vaeinpaint.data.split import SUBSETS
from vaeinpaint.evaluation.baselines import evenly_spaced, fill_all
from vaeinpaint.evaluation.by_hole_size import bin_metrics, by_hole_size, scores_by_method
from vaeinpaint.evaluation.by_minute import PROBE_COLUMNS, quality_by_minute
from vaeinpaint.evaluation.diversity import BIN_COLUMNS, sample
from vaeinpaint.evaluation.diversity import by_hole_size as diversity_by_hole_size
from vaeinpaint.evaluation.evaluate import restore, sample_grid, score_model, summarize
from vaeinpaint.evaluation.realism import LABEL, HoleSWD
from vaeinpaint.files import atomic_path, read_json, write_csv, write_json
from vaeinpaint.modeling.checkpoint import check_fits_pipeline, checkpoint_prior, load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.device import select_device
from vaeinpaint.modeling.layout import color_of
from vaeinpaint.params import load_params, model_path, resolve_samples

INPUTS = {"images": paths.IMAGES, "split": paths.SPLIT, "masks": paths.MASKS}


def checkpoint_file(spec: str) -> Path:
    """evaluate.model as a local file: the pipeline's checkpoint by default."""
    if not spec:
        return paths.CHECKPOINT
    if tracking.is_model_uri(spec):
        return tracking.resolve_checkpoint(spec)
    return model_path(spec, paths.project_root())


def main(params_file: Path = paths.PARAMS) -> None:
    params = load_params(params_file)
    tracking.check_reachable()  # a tracking server that is down stops us before the work, not after
    device = select_device(params.train.device)
    spec = params.evaluate.model
    images, split, masks = read_images(), read_split(), read_masks()
    checkpoint = checkpoint_file(spec)
    state = load_checkpoint(checkpoint)
    check_fits_pipeline(state, spec or checkpoint, images.shape[1], color_of(images))  # the prepared data says what this pipeline is
    model, _ = model_from_checkpoint(state, device)
    shares = read_mask_shares()

    results, tables, grid, extras = {}, [], None, None
    for subset_name in SUBSETS:
        subset = load_subset(subset_name, images, split, masks)
        raw = restore(model, subset.images, subset.masks, device, params.evaluate.batch_size)
        table = score_model(subset.images, subset.masks, raw)
        results[subset_name] = summarize(table)
        if subset_name == "test":
            extras = test_extras(model, subset, raw, shares, params, device, checkpoint_prior(state))
            results[subset_name].update(extras["diversity"])
        tables.append(table.assign(id=subset.ids, subset=subset_name))
        if subset_name == "test" and params.evaluate.grid_images:
            # The same test images in every experiment, spread over the set (and its classes).
            chosen = evenly_spaced(len(subset.ids), params.evaluate.grid_images)
            grid = sample_grid(subset.images[chosen], subset.masks[chosen], raw[chosen])
    baselines = read_json(paths.BASELINES_METRICS) if paths.BASELINES_METRICS.exists() else {}
    realism = {"hole_swd": extras["realism"]} if extras else {}
    write_json(paths.EVAL_METRICS, {**results, "baselines": baselines, **realism})
    per_image = pd.concat(tables, ignore_index=True)
    per_image["hole_share"] = per_image["id"].map(shares)
    write_csv(paths.EVAL_PER_IMAGE, per_image[["id", "subset", "hole_share", "ssim", "raw_ssim", "hole_psnr", "hole_l1"]])
    baseline_scores = read_baseline_scores() if paths.BASELINES_PER_IMAGE.exists() else None
    by_size = by_hole_size(scores_by_method(per_image, baseline_scores, shares))
    write_csv(paths.BY_HOLE_SIZE, by_size)
    write_csv(paths.DIVERSITY_BY_HOLE_SIZE, extras["by_hole_size"] if extras else pd.DataFrame(columns=BIN_COLUMNS))
    # Quality against minutes of training, beside the baselines on the same test images: the
    # pipeline's own training only (another model's probe is not this run's)
    probe = read_json(paths.PROBE) if paths.PROBE.exists() and not spec else {"test_ids": [], "rows": []}
    by_minute = quality_by_minute(pd.DataFrame(probe["rows"], columns=PROBE_COLUMNS), probe["test_ids"], baseline_scores)
    write_csv(paths.QUALITY_BY_MINUTE, by_minute)
    if grid is not None:
        with atomic_path(paths.SAMPLES) as tmp:
            grid.save(tmp, format="PNG")
    log_to_mlflow(spec, {**results, **realism}, baselines, by_size)


def test_extras(model, subset, raw, shares: pd.Series, params, device, prior: str) -> dict:
    """What only the test set gets: K draws per image (`evaluate.samples`, `auto` by the
    checkpoint's prior), their diversity (also by hole size), and the realism of the holes'
    fills (the mean completion, the draws, every classical fill of `baselines.methods`), on
    the same masks, at places and directions seeded by `train.seed`."""
    k = resolve_samples(params.evaluate.samples, prior)
    swd = HoleSWD(subset.images, subset.masks, params.train.seed)
    realism: dict = {"measure": LABEL, "model": swd.distance(raw)}
    figures, bins = {}, pd.DataFrame(columns=BIN_COLUMNS)
    if k >= 2:
        seed, batch = params.train.seed, params.evaluate.batch_size
        table, figures, descriptors = sample(model, subset.images, subset.masks, k, seed, device, batch, realism=swd)
        realism["model_samples"] = swd.distance_of(descriptors)
        bins = diversity_by_hole_size(table, pd.Series(subset.ids).map(shares).to_numpy(), k)
    for method in params.baselines.methods:
        realism[method] = swd.distance(fill_all(method, subset.images, subset.masks, params.baselines.workers))
    return {"diversity": figures, "by_hole_size": bins, "realism": realism}


def log_to_mlflow(spec: str, results: dict, baselines: dict, by_size: pd.DataFrame) -> None:
    if spec:  # another model's scores: a run of their own, tagged with the model
        run, model_id = tracking.start_run(tracking.run_name(), {**tracking.run_tags(INPUTS, __file__), "vaeinpaint.model": spec}), None
    else:
        info = read_json(paths.RUN_INFO) if paths.RUN_INFO.exists() else {}
        run, model_id = tracking.resume_run(info.get("run_id", "")), info.get("model_id")
    run.log_metrics(tracking.flat_metrics(results), model_id=model_id)  # also under the logged model
    run.log_metrics({**tracking.flat_metrics({"baselines": baselines}), **bin_metrics(by_size)})
    artifacts = (paths.EVAL_METRICS, paths.EVAL_PER_IMAGE, paths.BY_HOLE_SIZE, paths.DIVERSITY_BY_HOLE_SIZE)
    for artifact in (*artifacts, paths.QUALITY_BY_MINUTE, paths.SAMPLES, paths.PARAMS):
        if Path(artifact).exists():
            run.log_artifact(artifact, "evaluate")
    run.end()
    if report := run.lost_report():
        logging.getLogger("evaluate").warning("warning: %s; the DVC outputs and metrics files are written", report)


if __name__ == "__main__":
    run_stage(main)
