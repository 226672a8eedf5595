"""Inference: a trained model applied to photos of any size (placeholder, filled in the next commit)."""
