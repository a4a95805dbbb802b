"""MEAP: Mask-Enhanced Autoregressive Prediction on a lit_gpt LLaMA.

Importing this package needs only torch: optional fast kernels (Liger-Kernel, flash-attn) and
heavy libraries (transformers, lightning) are imported where they are used.
"""

from lit_gpt.config import Config

__all__ = ["Config", "GPT"]


def __getattr__(name):
    # GPT is imported lazily so that `from lit_gpt.config import Config` stays cheap.
    if name == "GPT":
        from lit_gpt.model import GPT

        return GPT
    raise AttributeError(name)
