"""TinyLlama's `lit_gpt.packed_dataset` import path; the code lives in `lit_gpt.compat.packed_dataset`."""

from lit_gpt.compat.packed_dataset import *  # noqa: F401,F403
from lit_gpt.compat.packed_dataset import __all__  # noqa: F401
