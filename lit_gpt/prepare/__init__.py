"""Corpus preparation: text files -> packed token chunks (`meap-prepare`, data_process/prepare_c4.py).

    sources.py                  finding the files of each split, reading texts per format (JSON lines, Parquet, Arrow)
    pool.py                     the worker processes, progress and warnings
    manifest.py                 manifest.json: settings, one entry per source, shard parts merged
    pipeline.py                 the prepare() run
    token_encoding.py           documents -> token ids, with the exact word cache where it is proven
    sentencepiece_encoding.py   the word cache's proof for sentencepiece BPE models
    gunzip.py                   the optional unzip step
    cli.py                      the command line
"""
