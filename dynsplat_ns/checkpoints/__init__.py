"""Checkpoints: crash-safe files, and fitting a checkpoint's state to another set of images or frames."""
