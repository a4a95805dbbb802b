"""MEAP supervised fine-tuning of a Hugging Face causal LM (the `meap-sft` command after `pip install -e .`).

    python MEAP-SFT/sft.py --model_name_or_path DIR --train_file data.jsonl --output_dir OUT \
        --template_name vicuna --meap_mode concat --mask_ratio 0.1 --model_max_length 4096 \
        [any transformers TrainingArguments: --num_train_epochs 2 --bf16 --deepspeed ...]

`--preset upstream` builds the upstream MEAP-SFT code's examples token for token instead.

`python MEAP-SFT/sft.py --help` lists the SFT options, `--help_trainer` the Trainer's.
"""

from lit_gpt.sft.cli import main

if __name__ == "__main__":
    main()
