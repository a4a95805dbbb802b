"""Conversion between lit_gpt checkpoints and Hugging Face LLaMA models (docs/CONVERSION.md)."""
