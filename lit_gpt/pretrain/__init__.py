"""MEAP pretraining with Lightning Fabric.

args.py      every setting (PretrainArgs), with its meaning and default, and its validation
recipe.py    data-only recipe files (pretrained/*.py) and the command line over them
step.py      train_step: one optimizer step (the unit the performance work measures)
schedule.py  get_lr: linear warmup, cosine decay
checkpoint.py  step-XXXXXXXX.pth files (full or sharded): save, prune, find, check, load, RNG state
parallel.py  parallelize: FSDP2 fully_shard per Block, and the Fabric strategy that applies it
metrics.py   metrics.csv, tensorboard/wandb, throughput and MFU, progress
train.py     setup (plan_run, build_fabric) -> main -> fit, validate

The batches of each step are read by position from one global stream in lit_gpt/data/batches.py.
"""

from lit_gpt.pretrain.args import PretrainArgs

__all__ = ["PretrainArgs", "pretrain"]


def __getattr__(name):
    # The trainer pulls in lightning; keep `import lit_gpt.pretrain` light for recipe checks.
    if name == "pretrain":
        from lit_gpt.pretrain.train import pretrain

        return pretrain
    raise AttributeError(name)
