"""Import a Hugging Face LLaMA folder (e.g. TinyLlama) as a lit checkpoint to MEAP-pretrain from.

    python convert/convert_hf_checkpoint.py --checkpoint_dir TinyLlama-1.1B --model_name tiny_LLaMA_1b \
        --out checkpoints/tinyllama.pth

When the vocabulary must grow (for `[MASK]`, or to the named model's padded size), the new
embedding and output rows are the mean of the existing ones. Start training from the result with
the trainer's --init_from option.
"""

from lit_gpt.convert.cli import hf_to_lit_main as main

if __name__ == "__main__":
    main()
