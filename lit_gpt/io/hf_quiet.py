"""Hugging Face loads without their per-load progress bar ("Loading weights"): the project's loads
take a second on the models it evaluates and exports, and the bar filled every command's stderr."""

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """Turns transformers' progress bars off for the block and restores the user's setting after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
