"""Convert a lit checkpoint into a Hugging Face LLaMA folder (safetensors, config, tokenizer).

    python convert/convert_lit_checkpoint.py --checkpoint_name out/step-00010000.pth \
        --out_dir hf_model [--model_name tiny_LLaMA_1b_mask] [--tokenizer_dir TOK] [--dtype bfloat16]

The folder loads with `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.
--model_name may be omitted when the checkpoint records its config (the trainer's do);
--tokenizer_dir defaults to the tokenizer the checkpoint records.
A sharded checkpoint (the folder `--checkpoint_format sharded` writes) is read the same way, on one
CPU process, whatever the number of processes that trained it.
"""

from lit_gpt.convert.cli import lit_to_hf_main as main

if __name__ == "__main__":
    main()
