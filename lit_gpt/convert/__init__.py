"""Conversion between lit_gpt checkpoints and Hugging Face LLaMA models.

- `hf`: the key map, q/k/v split/merge and config translation (torch only);
- `checkpoint`: `load_lit_checkpoint`, the validated loader of trainer/upstream/plain checkpoints;
- `export`: `export_hf` (a publishable HF folder), `lit_to_hf` (in memory), `import_hf` (HF -> lit).

Weight files are read through `lit_gpt.io.safe_load` (an allow-list unpickler).
"""
