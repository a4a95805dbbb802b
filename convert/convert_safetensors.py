"""Hugging Face pytorch_model.bin -> safetensors (read through the allow-list loader).

Same as `meap-convert safetensors`; `--help` prints the full description and options
(lit_gpt/convert/cli.py, SAFETENSORS).
"""

from lit_gpt.convert.cli import safetensors_main as main

if __name__ == "__main__":
    main()
