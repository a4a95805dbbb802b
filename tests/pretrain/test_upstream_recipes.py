"""The paper recipes resolve to what the upstream scripts (scitix/MEAP, MEAP-Pretain/pretrained/) ran.

The figures below are copied from those scripts: model_name, mask_ratio, max_step, warmup_steps,
micro_batch_size, eval and save intervals (eval_iters 100),
global_batch_size 256, learning_rate 4e-4 -> min_lr 4e-5, weight_decay 0.05,
betas (0.9, 0.95), grad_clip 1.0, at block_size 4096 (1,048,576 tokens per step).
"""

from pathlib import Path

import pytest

from lit_gpt.config import Config
from lit_gpt.pretrain.recipe import parse_args
from lit_gpt.pretrain.schedule import warmup_steps_for

RECIPES = Path(__file__).resolve().parents[2] / "pretrained"

# recipe: (upstream script, model_name, mask_ratio, max_step, warmup_steps, micro_batch_size, billions of tokens,
#          eval_step_interval, save_step_interval)
UPSTREAM = {
    "meap_0.1b_2b": ("meap_0.1b_2b.py", "tiny_LLaMA_0.1b_mask", 0.1, 1907, 190, 16, 2.0, 600, 1900),
    "meap_0.1b_2b_mask0.05": ("meap_0.1b_2b_0.05.py", "tiny_LLaMA_0.1b_mask", 0.05, 1907, 190, 16, 2.0, 600, 1900),
    "meap_0.1b_2b_mask0.1": ("meap_0.1b_2b_0.1.py", "tiny_LLaMA_0.1b_mask", 0.1, 1907, 190, 16, 2.0, 1900, 1900),
    "meap_0.3b_5b": ("meap_0.3b_5b.py", "tiny_LLaMA_300M_mask", 0.15, 4768, 476, 16, 5.0, 4766, 4766),
    "meap_0.3b_5b_mask0.05": ("meap_0.3b_5b_0.05.py", "tiny_LLaMA_300M_mask", 0.05, 4768, 476, 16, 5.0, 4766, 4766),
    "meap_0.3b_5b_mask0.1": ("meap_0.3b_5b_0.1.py", "tiny_LLaMA_300M_mask", 0.1, 4768, 476, 16, 5.0, 4766, 4766),
    "meap_0.3b_5b_mask0.2": ("meap_0.3b_5b_0.2.py", "tiny_LLaMA_300M_mask", 0.2, 4768, 476, 16, 5.0, 4766, 4766),
    "meap_0.5b_10b": ("meap_0.5b_10b.py", "tiny_LLaMA_0.5b_mask", 0.15, 10000, 1000, 8, 10.5, 500, 5000),
    "meap_0.5b_10b_mask0.05": ("meap_0.5b_10b_0.05.py", "tiny_LLaMA_0.5b_mask", 0.05, 10000, 1000, 8, 10.5, 500, 5000),
    "meap_0.5b_10b_mask0.1": ("meap_0.5b_10b_0.1.py", "tiny_LLaMA_0.5b_mask", 0.1, 10000, 1000, 8, 10.5, 500, 5000),
    "meap_0.5b_10b_mask0.2": ("meap_0.5b_10b_0.2.py", "tiny_LLaMA_0.5b_mask", 0.2, 10000, 1000, 8, 10.5, 500, 5000),
    "meap_1b": ("meap_1b.py", "tiny_LLaMA_1b_mask", 0.15, 190000, 19000, 8, 199.2, 4766, 20000),
    "meap_1b_200b": ("meap_1b.py", "tiny_LLaMA_1b_mask", 0.15, 190000, 19000, 8, 199.2, 4766, 20000),
    "meap_1b_20b": ("meap_1b_0.15_20b.py", "tiny_LLaMA_1b_mask", 0.15, 20000, 2000, 8, 21.0, 4766, 10000),
    "meap_1b_40b": ("meap_1b_0.15_40b.py", "tiny_LLaMA_1b_mask", 0.15, 40000, 4000, 8, 41.9, 4766, 20000),
    "meap_1b_60b": ("meap_1b_0.15_60b.py", "tiny_LLaMA_1b_mask", 0.15, 60000, 6000, 8, 62.9, 4766, 20000),
    "meap_1b_mask0.05": ("meap_1b_0.05.py", "tiny_LLaMA_1b_mask", 0.05, 190000, 19000, 8, 199.2, 4766, 20000),
    "meap_1b_mask0.1": ("meap_1b_0.1.py", "tiny_LLaMA_1b_mask", 0.1, 190000, 19000, 8, 199.2, 4766, 20000),
    "meap_1b_mask0.2": ("meap_1b_0.2.py", "tiny_LLaMA_1b_mask", 0.2, 190000, 19000, 8, 199.2, 4766, 20000),
}

# every script in upstream's MEAP-Pretain/pretrained/ (its tree at commit 0f5e837)
UPSTREAM_SCRIPTS = {
    "meap_0.1b_2b.py", "meap_0.1b_2b_0.05.py", "meap_0.1b_2b_0.1.py", "meap_0.3b_5b.py", "meap_0.3b_5b_0.05.py",
    "meap_0.3b_5b_0.1.py", "meap_0.3b_5b_0.2.py", "meap_0.5b_10b.py", "meap_0.5b_10b_0.05.py",
    "meap_0.5b_10b_0.1.py", "meap_0.5b_10b_0.2.py", "meap_1b.py", "meap_1b_0.05.py", "meap_1b_0.1.py",
    "meap_1b_0.15_20b.py", "meap_1b_0.15_40b.py", "meap_1b_0.15_60b.py", "meap_1b_0.2.py",
}


def resolve(recipe: str):
    args = parse_args(["--config", str(RECIPES / f"{recipe}.py")])
    T = args.block_size or Config.from_name(args.model_name).block_size
    budgets = [args.max_steps] if args.max_steps else []
    if args.max_tokens:
        budgets.append(-(-args.max_tokens // (args.global_batch_size * T)))
    steps = min(budgets)
    return args, T, steps, warmup_steps_for(steps, args.warmup_fraction, args.warmup_steps)


@pytest.mark.parametrize("recipe", sorted(UPSTREAM))
def test_paper_recipe_follows_the_upstream_script(recipe):
    script, model_name, mask_ratio, max_step, warmup, micro, billions, eval_every, save_every = UPSTREAM[recipe]
    args, T, steps, warmup_steps = resolve(recipe)
    assert (args.model_name, args.mask_ratio, steps, warmup_steps) == (model_name, mask_ratio, max_step, warmup)
    assert (args.global_batch_size, args.micro_batch_size, T) == (256, micro, 4096)
    assert round(steps * args.global_batch_size * T / 1e9, 1) == billions
    assert (args.learning_rate, args.min_lr, args.weight_decay, args.beta1, args.beta2, args.grad_clip) == (
        4e-4, 4e-5, 0.05, 0.9, 0.95, 1.0)
    assert (args.eval_interval, args.save_interval, args.eval_iters) == (eval_every, save_every, 100)
    assert f"MEAP-Pretain/pretrained/{script}" in (RECIPES / f"{recipe}.py").read_text()  # the docstring cites it


def test_every_upstream_script_has_a_recipe():
    assert {entry[0] for entry in UPSTREAM.values()} == UPSTREAM_SCRIPTS


@pytest.mark.parametrize("recipe", ["meap_0.1b_2b", "meap_0.3b_5b", "meap_0.5b_10b", "meap_1b", "meap_1b_20b",
                                    "meap_1b_40b", "meap_1b_60b", "meap_1b_200b"])
def test_ntp_baselines_share_the_budget(recipe):
    meap, ntp = resolve(recipe), resolve("ntp" + recipe[4:])
    assert ntp[0].mask_ratio == 0.0 and ntp[2:] == meap[2:]
