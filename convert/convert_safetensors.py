"""Rewrite Hugging Face `pytorch_model.bin` weights as safetensors (for upstream MEAP users).

    python convert/convert_safetensors.py --checkpoint_path hf_model/pytorch_model.bin --out_dir hf_model_st

config.json, generation_config.json and tokenizer files next to the .bin are copied along.
The .bin is read with weights_only=True: it cannot run code. New exports need no extra step:
convert_lit_checkpoint.py writes safetensors directly.
"""

from lit_gpt.convert.cli import safetensors_main as main

if __name__ == "__main__":
    main()
