"""The VAEs, their training loop and checkpoints."""
