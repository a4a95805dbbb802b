"""Corpus preparation: text files -> packed token chunks (`meap-prepare`, data_process/prepare_c4.py)."""

# `from lit_gpt.prepare import prepare, ...` as before prepare became a package; loaded on first use,
# so the command line starts without the pipeline's imports.
_PIPELINE = {"prepare", "merge", "Summary", "SourceResult", "PrepareError", "DEFAULT_CHUNK_SIZE", "MANIFEST",
             "find_sources", "iter_records", "load_manifest", "check_manifest", "tokenizer_fingerprint",
             "gunzip_files"}


def __getattr__(name: str):
    if name in _PIPELINE:
        import importlib

        return getattr(importlib.import_module("lit_gpt.prepare.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
