"""Inference: a trained model applied to photos of any size, mode and colour.

Below both `apps` (the command, its folder mode, the server) and `tracking` (the MLflow pyfunc
model), which import it; it imports `modeling` and the data helpers, never those two.

- `photos`: photos in (any format PIL reads, upright, a working mode, a pixel limit);
- `holes`: where the hole is (a mask image, boxes, a random hole from the mask generator);
- `loading`: a model from a checkpoint file;
- `windows`: where the model looks in a large photo (the strategies);
- `engine`: `inpaint_image`, THE inpainting function;
- `compose`: the completion back into the photo (colour, alpha, 16 bits), and the classical fills;
- `encoding`: photos out, lossless and checked.
"""

from vaeinpaint.inference.engine import inpaint_image
from vaeinpaint.inference.loading import Model, load_model_file

__all__ = ["Model", "inpaint_image", "load_model_file"]
