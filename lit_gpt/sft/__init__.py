"""MEAP supervised fine-tuning on `transformers.Trainer` (`meap-sft`, SPEC §3).

`import lit_gpt.sft` needs only torch; `datasets` and `transformers` load where they are used.
"""

from lit_gpt.sft.builder import IGNORE_INDEX, build_meap_example, build_meap_example_from_segments
from lit_gpt.sft.templates import TEMPLATES, Segment, get_template

__all__ = [
    "IGNORE_INDEX",
    "TEMPLATES",
    "Segment",
    "build_meap_example",
    "build_meap_example_from_segments",
    "get_template",
]
