"""Hugging Face LLaMA folder -> lit checkpoint (for --init_from).

Same as `meap-convert hf-to-lit`; `--help` prints the full description and options
(lit_gpt/convert/cli.py, HF_TO_LIT).
"""

from lit_gpt.convert.cli import hf_to_lit_main as main

if __name__ == "__main__":
    main()
