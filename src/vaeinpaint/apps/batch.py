"""`vaeinpaint inpaint PHOTOS_DIR -o OUT_DIR`: every photo under a folder, each with the same
guarantees as one photo (only the hole changes, lossless PNG outputs, atomic writes).

Masks come from a folder, matched by the photo's path without its extension, as LaMa's and
IOPaint's batch modes match them (`photos/a/cat.jpg` takes `masks/a/cat.png`, or any other
image extension), or every photo gets `--box` / `--random`. A photo that cannot be done is
skipped with its reason, and the others go on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vaeinpaint.apps.inpaint import check_hole_options, check_sampling, hole_from_options
from vaeinpaint.apps.models import load_model
from vaeinpaint.data.images import list_image_files
from vaeinpaint.errors import DataError, ParamError
from vaeinpaint.inference.encoding import encode, sample_paths, write_files
from vaeinpaint.inference.engine import inpaint_image
from vaeinpaint.inference.holes import EmptyMask, MaskSizeError, mask_image
from vaeinpaint.inference.photos import load_photo
from vaeinpaint.inference.windows import DEFAULT_STRATEGY
from vaeinpaint.progress import progress

OUTPUT_SUFFIX = ".png"


@dataclass
class FolderReport:
    photos: int = 0
    done: int = 0
    written: list[Path] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # reason -> "photo: detail"

    def skip(self, reason: str, rel: str, detail: str = "") -> None:
        self.skipped[reason].append(f"{rel}: {detail}" if detail else rel)

    def summary(self, out_dir: Path) -> list[str]:
        lines = [f"inpainted {self.done} of {self.photos} photos into {out_dir} ({len(self.written)} files written)"]
        for reason, items in sorted(self.skipped.items()):
            lines.append(f"skipped {len(items)}, {reason}:")
            lines.extend(f"  {item}" for item in items)
        return lines


def inpaint_folder(
    photos_dir: Path,
    out_dir: Path,
    model_spec: str | Path,
    *,
    mask_dir: Path | None = None,
    box: str | None = None,
    ratio: float | None = None,
    count: int = 1,
    shape: str = "square",
    seed: int = 0,
    samples: int = 1,
    save_mask_dir: Path | None = None,
    device: str = "auto",
    strategy: str = DEFAULT_STRATEGY,
) -> FolderReport:
    check_hole_options(mask_dir, box, ratio, count, shape, seed)
    check_sampling(samples, seed, strategy)
    folders = {"--mask": mask_dir, "--save-mask": save_mask_dir}
    for option, folder in folders.items():
        if folder is not None and folder.exists() and not folder.is_dir():
            raise ParamError(f"{option} {folder}: with a folder of photos, {option} must be a folder too")
    if mask_dir is not None and not mask_dir.is_dir():
        raise ParamError(f"--mask {mask_dir}: no such folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ParamError(f"-o {out_dir}: with a folder of photos, -o must be a folder")
    for option, folder in {"-o": out_dir, "--save-mask": save_mask_dir}.items():
        for source in (photos_dir, mask_dir):
            if folder is not None and source is not None and folder.resolve().is_relative_to(source.resolve()):
                raise ParamError(f"{option} {folder}: is inside {source}; write outside the input folders")
    photos = list_image_files(photos_dir)
    if not photos:
        raise ParamError(f"{photos_dir}: no image files in it")
    masks = masks_by_stem(mask_dir) if mask_dir is not None else {}
    model = load_model(str(model_spec), device)

    report, taken = FolderReport(photos=len(photos)), set()
    for photo_path in progress(photos, desc="inpainting", unit="photo"):
        rel = PurePosixPath(photo_path.relative_to(photos_dir).as_posix())
        stem = rel.with_suffix("")
        if stem in taken:
            report.skip("same name as another photo but for the extension (outputs are .png)", str(rel))
            continue
        taken.add(stem)
        mask_path = None
        if mask_dir is not None:
            candidates = masks.get(stem, [])
            if len(candidates) != 1:
                found = ", ".join(p.name for p in candidates)
                report.skip("no mask" if not candidates else "several masks", str(rel), found)
                continue
            mask_path = candidates[0]
        try:
            photo = load_photo(photo_path, str(rel))
        except DataError as exc:
            report.skip("unreadable photo", str(rel), detail_of(exc, str(rel)))
            continue
        try:
            hole = hole_from_options(photo.image.size, mask_path, box, ratio, count, seed, shape)
            filled = inpaint_image(model, photo.image, hole, strategy=strategy, samples=samples, seed=seed)
        except DataError as exc:
            report.skip(reason_of(exc, mask_path is not None), str(rel), detail_of(exc, str(mask_path)))
            continue
        outputs = sample_paths(out_dir / stem.with_suffix(OUTPUT_SUFFIX), samples)
        files = {path: encode(image, path, photo.icc_profile) for path, image in zip(outputs, filled)}
        if save_mask_dir is not None:
            where = save_mask_dir / stem.with_suffix(OUTPUT_SUFFIX)
            files[where] = encode(mask_image(hole), where, option="--save-mask")
        write_files(files)
        report.done += 1
        report.written.extend(files)
    return report


def masks_by_stem(mask_dir: Path) -> dict[PurePosixPath, list[Path]]:
    found: dict[PurePosixPath, list[Path]] = defaultdict(list)
    for path in list_image_files(mask_dir):
        found[PurePosixPath(path.relative_to(mask_dir).as_posix()).with_suffix("")].append(path)
    return found


def reason_of(exc: DataError, from_mask_file: bool) -> str:
    if isinstance(exc, MaskSizeError):
        return "mask of another size"
    if isinstance(exc, EmptyMask):
        return "empty mask"
    if from_mask_file and "--mask" in str(exc):
        return "unreadable mask"
    if str(exc).startswith("strategy"):
        return "too large for the strategy"
    return "hole does not fit"


def detail_of(exc: DataError, name: str) -> str:
    """The error without the file name it starts with (the report names the photo)."""
    text = str(exc)
    for prefix in (f"--mask {name}: ", f"{name}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
