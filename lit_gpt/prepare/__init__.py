"""Corpus preparation: text files -> packed token chunks (`meap-prepare`, data_process/prepare_c4.py).

    pipeline.py                 sources, worker pool, manifest: the prepare() run
    token_encoding.py           documents -> token ids, with the exact word cache where it is proven
    sentencepiece_encoding.py   the word cache's proof for sentencepiece BPE models
    cli.py                      the command line
"""
