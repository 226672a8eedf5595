"""The trained VAE as an MLflow pyfunc model: images and masks in, restored images out.

Logged as "models from code": the model is the file `model_code.py` (which builds an
`InpaintModel`) plus the checkpoint as an artifact, so loading runs no pickle, only that
file, and the weights load with `torch.load(..., weights_only=True)`. Loading needs the
`vaeinpaint` package installed (and nothing else); `mlflow models serve --env-manager local`
serves it from the current environment.

Input, a DataFrame (over REST: `dataframe_split` or `dataframe_records` JSON, binary
columns as base64):
- `image` (binary): the photo, any size, in any format `vaeinpaint inpaint` reads;
- `mask` (binary, optional): an image of the same size, white = missing; or
- `box` (string, optional): the hole as `x,y,w,h` in the photo's pixels.
Each row gives `image` and one of `mask` or `box`.
Params (optional): `sample` (false: the latent's mean, deterministic; true: a completion
drawn from the latent: from the learned prior p(z | visible pixels) when the checkpoint has
one, `model.prior: learned`), `seed` (seeds that draw) and `strategy` (`crop`, `resize` or
`original`, as `vaeinpaint inpaint --strategy`).
Output: a DataFrame with `image` (binary): each photo as PNG, the hole filled, every other
pixel exactly as it was: the same code and result as `vaeinpaint inpaint`.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from PIL import Image

import vaeinpaint
from vaeinpaint.errors import VaeinpaintError
from vaeinpaint.inference.encoding import encode
from vaeinpaint.inference.engine import inpaint_image
from vaeinpaint.inference.holes import box_hole, parse_box, read_mask
from vaeinpaint.inference.loading import load_model_file
from vaeinpaint.inference.photos import load_photo
from vaeinpaint.inference.windows import DEFAULT_STRATEGY, check_strategy
from vaeinpaint.modeling.checkpoint import load_checkpoint, save_checkpoint

MODEL_NAME = "model"  # the logged model's name: runs:/RUN_ID/model
MODEL_CODE = Path(__file__).with_name("model_code.py")
CHECKPOINT_ARTIFACT = "checkpoint"

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("binary", "image"), ColSpec("binary", "mask", required=False), ColSpec("string", "box", required=False)]),
    outputs=Schema([ColSpec("binary", "image")]),
    params=ParamSchema(
        [ParamSpec("sample", "boolean", False), ParamSpec("seed", "long", 0), ParamSpec("strategy", "string", DEFAULT_STRATEGY)]
    ),
)


class InpaintModel(mlflow.pyfunc.PythonModel):
    """`vaeinpaint inpaint` as a pyfunc model (see the module's docstring for the format)."""

    def load_context(self, context: Any) -> None:
        self.model = load_model_file(context.artifacts[CHECKPOINT_ARTIFACT])  # weights_only=True, as everywhere

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        seed, draw, strategy = int(params.get("seed", 0)), bool(params.get("sample", False)), str(params.get("strategy", DEFAULT_STRATEGY))
        try:
            check_strategy(strategy)
            restored = [self.restore(row, f"row {i}", seed, draw, strategy) for i, row in enumerate(model_input.to_dict("records"))]
        except VaeinpaintError as exc:  # bad input: the scoring server answers 400 with this line
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from None
        return pd.DataFrame({"image": restored})

    def restore(self, row: dict[str, Any], name: str, seed: int, draw: bool, strategy: str) -> bytes:
        photo = load_photo(io.BytesIO(as_bytes(row.get("image"), f"{name}: image")), f"{name}: image")
        mask, box = present(row.get("mask")), present(row.get("box"))
        if (mask is None) == (box is None):
            raise VaeinpaintError(f"{name}: give exactly one of mask (an image, white = missing) or box (x,y,w,h)")
        if mask is not None:
            hole = read_mask(io.BytesIO(as_bytes(mask, f"{name}: mask")), photo.image.size, f"{name}: mask")
        else:
            hole = box_hole(parse_box(str(box)), photo.image.size)
        # A drawn completion with `seed` is the first of `vaeinpaint inpaint --samples K --seed seed`'s
        # (K > 1 draws seeds seed, seed + 1, ...); the engine draws only from K = 2 up.
        images = inpaint_image(self.model, photo.image, hole, strategy=strategy, samples=2 if draw else 1, seed=seed)
        return encode(images[0], Path("restored.png"), photo.icc_profile, option=name)


def present(value: Any) -> Any:
    """None for a missing cell (None, NaN, empty), else the value."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, (str, bytes)) and not value):
        return None
    return value


def as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise VaeinpaintError(f"{name}: expected image bytes (PNG, JPEG, ...; base64 in JSON), got {type(value).__name__}")


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def input_example(size: int) -> pd.DataFrame:
    """One gray gradient with a centred square hole of 20% of its area, at the model's size
    (a colour model takes gray photos too)."""
    ramp = np.linspace(40, 215, size)
    photo = np.rint((ramp[None, :] + ramp[:, None]) / 2).astype(np.uint8)
    side = max(1, round((0.2 * size * size) ** 0.5))
    mask = np.zeros((size, size), dtype=np.uint8)
    start = (size - side) // 2
    mask[start : start + side, start : start + side] = 255
    return pd.DataFrame({"image": [png_bytes(photo)], "mask": [png_bytes(mask)]})


def inference_checkpoint(state: dict[str, Any], folder: Path) -> Path:
    """The weights and config only (no optimizer state: a third of the size)."""
    path = folder / "checkpoint.pt"
    save_checkpoint(path, {key: state[key] for key in ("model", "config", "epoch") if key in state})
    return path


def log_pyfunc_model(run_id: str, checkpoint: Path, step: int = 0) -> Any:
    """Log `checkpoint` to run `run_id` as the pyfunc model `model` (Logged models in the UI;
    `runs:/RUN_ID/model`). Returns MLflow's ModelInfo."""
    from vaeinpaint.tracking.store import tracking_uri

    state = load_checkpoint(checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        slim = inference_checkpoint(state, Path(folder))
        mlflow.set_tracking_uri(tracking_uri())
        mlflow.start_run(run_id=run_id)
        try:
            return mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(MODEL_CODE),
                artifacts={CHECKPOINT_ARTIFACT: str(slim)},
                signature=SIGNATURE,
                input_example=(input_example(int(state["config"]["size"])), {"sample": False, "seed": 0, "strategy": DEFAULT_STRATEGY}),
                pip_requirements=[f"vaeinpaint=={vaeinpaint.__version__}"],
                step=step,
            )
        finally:
            mlflow.end_run("RUNNING")  # the run goes on; Run.end() gives it its final status
