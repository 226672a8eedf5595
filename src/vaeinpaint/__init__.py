"""vaeinpaint: image inpainting with variational autoencoders, as a DVC + MLflow pipeline."""

__version__ = "0.1.0"
