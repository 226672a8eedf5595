"""DVC stage `evaluate`: restore train and test, score them beside the baselines, also by hole
size, log to MLflow.

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
from vaeinpaint.evaluation.baselines import evenly_spaced
from vaeinpaint.evaluation.by_hole_size import bin_metrics, by_hole_size, scores_by_method
from vaeinpaint.evaluation.by_minute import PROBE_COLUMNS, quality_by_minute
from vaeinpaint.evaluation.evaluate import diversity, restore, sample_grid, score_model, summarize
from vaeinpaint.files import atomic_path, read_json, write_csv, write_json
from vaeinpaint.modeling.checkpoint import check_fits_pipeline, load_checkpoint, model_from_checkpoint
from vaeinpaint.modeling.device import select_device
from vaeinpaint.modeling.layout import color_of
from vaeinpaint.params import load_params, model_path

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

    results, tables, grid = {}, [], None
    for subset_name in SUBSETS:
        subset = load_subset(subset_name, images, split, masks)
        raw = restore(model, subset.images, subset.masks, device, params.evaluate.batch_size)
        table = score_model(subset.images, subset.masks, raw)
        results[subset_name] = summarize(table)
        if subset_name == "test" and params.evaluate.samples >= 2:
            results[subset_name].update(
                diversity(
                    model, subset.images, subset.masks, params.evaluate.samples, params.train.seed, device, params.evaluate.batch_size
                )
            )
        tables.append(table.assign(id=subset.ids, subset=subset_name))
        if subset_name == "test" and params.evaluate.grid_images:
            # The same test images in every experiment, spread over the set (and its classes).
            chosen = evenly_spaced(len(subset.ids), params.evaluate.grid_images)
            grid = sample_grid(subset.images[chosen], subset.masks[chosen], raw[chosen])
    baselines = read_json(paths.BASELINES_METRICS) if paths.BASELINES_METRICS.exists() else {}
    write_json(paths.EVAL_METRICS, {**results, "baselines": baselines})
    per_image = pd.concat(tables, ignore_index=True)
    shares = read_mask_shares()
    per_image["hole_share"] = per_image["id"].map(shares)
    write_csv(paths.EVAL_PER_IMAGE, per_image[["id", "subset", "hole_share", "ssim", "raw_ssim", "hole_psnr", "hole_l1"]])
    baseline_scores = read_baseline_scores() if paths.BASELINES_PER_IMAGE.exists() else None
    by_size = by_hole_size(scores_by_method(per_image, baseline_scores, shares))
    write_csv(paths.BY_HOLE_SIZE, by_size)
    # Quality against minutes of training, beside the baselines on the same test images: the
    # pipeline's own training only (another model's probe is not this run's)
    probe = read_json(paths.PROBE) if paths.PROBE.exists() and not spec else {"test_ids": [], "rows": []}
    by_minute = quality_by_minute(pd.DataFrame(probe["rows"], columns=PROBE_COLUMNS), probe["test_ids"], baseline_scores)
    write_csv(paths.QUALITY_BY_MINUTE, by_minute)
    if grid is not None:
        with atomic_path(paths.SAMPLES) as tmp:
            grid.save(tmp, format="PNG")

    if spec:  # another model's scores: a run of their own, tagged with the model
        run, model_id = tracking.start_run(tracking.run_name(), {**tracking.run_tags(INPUTS, __file__), "vaeinpaint.model": spec}), None
    else:
        info = read_json(paths.RUN_INFO) if paths.RUN_INFO.exists() else {}
        run, model_id = tracking.resume_run(info.get("run_id", "")), info.get("model_id")
    run.log_metrics(tracking.flat_metrics(results), model_id=model_id)  # also under the logged model
    run.log_metrics({**tracking.flat_metrics({"baselines": baselines}), **bin_metrics(by_size)})
    for artifact in (paths.EVAL_METRICS, paths.EVAL_PER_IMAGE, paths.BY_HOLE_SIZE, paths.QUALITY_BY_MINUTE, paths.SAMPLES, paths.PARAMS):
        if Path(artifact).exists():
            run.log_artifact(artifact, "evaluate")
    run.end()
    if report := run.lost_report():
        logging.getLogger("evaluate").warning("warning: %s; the DVC outputs and metrics files are written", report)


if __name__ == "__main__":
    run_stage(main)
