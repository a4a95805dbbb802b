"""MEAP: Mask-Enhanced Autoregressive Prediction on a lit_gpt LLaMA.

Where things live:

    model.py config.py    the LLaMA model (GPT) and its named configurations
    kernels.py loss.py    attention/RoPE/norm kernels with plain fallbacks; the cross-entropy
    meap.py               the masking (MEAP's [MASK] tokens in the input, the targets unchanged)
    tokenizer.py          loading a tokenizer folder and adding [MASK]
    errors.py cli.py      UserError (one line, exit 2) and the shared command-line helpers
    data/                 how the trainer reads data: chunk format, writer, streams, mixing, batches
    prepare/              how C4 (or any JSON/text corpus) is tokenised into chunks: `meap-prepare`
    pretrain/             the training loop (train.py), settings (args.py, recipe.py), step, FSDP
                          (parallel.py), the checkpoint format (checkpoint.py): `meap-pretrain`
    sft/                  MEAP supervised fine-tuning on transformers' Trainer: `meap-sft`
    convert/              lit <-> Hugging Face conversion and export: `meap-convert`
    eval/                 needle-in-a-haystack and other retrieval, multi-document QA, attention
                          analysis: `meap-eval`
    io/                   safe loading of foreign weights, the run lock, hyperparameters.yaml
    compat/               TinyLlama's packed_dataset API (still importable as lit_gpt.packed_dataset)

Outside the library: the run recipes (the 1B one is pretrained/meap_1b.py), the benchmarks and the
MEAP-vs-NTP harness (tools/, run by scripts/), and the entry scripts (MEAP-Pretrain/, MEAP-SFT/,
convert/, data_process/).

Importing this package needs only torch: optional fast kernels (Liger-Kernel, flash-attn) and
heavy libraries (transformers, lightning) are imported where they are used.
"""

from lit_gpt.config import Config

__all__ = ["Config", "GPT"]


def __getattr__(name):
    # GPT is imported lazily so that `from lit_gpt.config import Config` stays cheap.
    if name == "GPT":
        from lit_gpt.model import GPT

        return GPT
    raise AttributeError(name)
