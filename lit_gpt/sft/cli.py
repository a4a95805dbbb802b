"""`meap-sft` / MEAP-SFT/sft.py: MEAP supervised fine-tuning of a Hugging Face causal LM.

    meap-sft --model_name_or_path DIR --train_file data.jsonl --output_dir OUT \
        --template_name vicuna --meap_mode concat --mask_ratio 0.1 --model_max_length 4096 \
        [any transformers TrainingArguments: --num_train_epochs 2 --bf16 --deepspeed ...]

`--help` lists the model, data, MEAP and LoRA options; `--help_trainer` the Trainer's.
"""

from __future__ import annotations

from typing import Optional, Sequence

from lit_gpt.cli import exit_on_user_error


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> None:
    from lit_gpt.sft.train import main as train_main

    train_main(argv)
