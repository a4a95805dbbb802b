"""Corpus preparation: text files -> packed token chunks (`meap-prepare`, data_process/prepare_c4.py)."""
