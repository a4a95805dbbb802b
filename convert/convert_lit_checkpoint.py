"""lit checkpoint (file or sharded folder) -> Hugging Face folder.

Same as `meap-convert lit-to-hf`; `--help` prints the full description and options
(lit_gpt/convert/cli.py, LIT_TO_HF).
"""

from lit_gpt.convert.cli import lit_to_hf_main as main

if __name__ == "__main__":
    main()
