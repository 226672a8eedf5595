"""The file MLflow runs to build the pyfunc model when it loads one ("models from code"):
the model is this code plus the checkpoint artifact, never a pickle. See tracking.pyfunc."""

from mlflow.models import set_model

from vaeinpaint.tracking.pyfunc import InpaintModel

set_model(InpaintModel())
