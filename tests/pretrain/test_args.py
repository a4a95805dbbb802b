"""The settings tree (lit_gpt/pretrain/args.py): typed mixture, --print_config, numbers, paths, one field."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lit_gpt.errors import UserError
from lit_gpt.pretrain import args as args_mod
from lit_gpt.pretrain.args import DataSource, PretrainArgs
from lit_gpt.pretrain.recipe import build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "pretrained" / "meap_tiny.py")


def test_a_mixture_as_a_list_or_as_the_old_string_is_the_same_run(tmp_path):
    from_string = parse_args(["--config", TINY, "--train_prefix", "c4:0.7,wiki:0.3"])
    from_list = parse_args(["--config", TINY, "--train_prefix", "[{prefix: c4, weight: 7}, {prefix: wiki, weight: 3}]"])
    recipe = tmp_path / "mix.py"
    recipe.write_text(f'base = "{TINY}"\ntrain_prefix = [{{"prefix": "c4", "weight": 0.7}}, {{"prefix": "wiki", "weight": 0.3}}]\n')
    from_recipe = parse_args(["--config", str(recipe)])
    assert from_string == from_list == from_recipe
    assert from_string.train_prefix == [DataSource("c4", 0.7), DataSource("wiki", pytest.approx(0.3))]
    assert parse_args(["--config", TINY]).train_prefix == [DataSource("c4", 1.0)]


def test_print_config_reads_back_to_the_same_settings(tmp_path, capsys):
    argv = ["--config", TINY, "--mask_ratio", "0.1", "--meap.mask_span", "2", "--train_prefix", "c4:1,wiki:3",
            "--model_overrides", '{"n_layer": 3}', "--max_tokens", "2e6"]
    with pytest.raises(SystemExit) as exit_:
        parse_args([*argv, "--print_config"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["meap"] == {"mask_ratio": 0.1, "mask_span": 2, "mask_scheme": "per_sequence",
                                               "mask_shared_across_batch": None}
    (tmp_path / "run.yaml").write_text(printed)
    assert parse_args(["--config", str(tmp_path / "run.yaml")]) == parse_args(argv)
    assert parse_args(argv).model_overrides == {"n_layer": 3}  # merged with the recipe's (none here)


def test_hyperparameters_yaml_repeats_the_run_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    args = parse_args(["--config", TINY, "--init_from", "out/x.pth", "--resume", "out/y.pth", "--val_data_dir", "v"])
    for name in ("train_data_dir", "val_data_dir", "tokenizer_dir", "out_dir", "init_from", "resume"):
        assert getattr(args, name) == str(REPO / Path(getattr(args, name)).relative_to(REPO)), name
    assert args.tokenizer_dir == str(REPO / "data" / "tokenizer")
    (tmp_path / "hyperparameters.yaml").write_text(yaml.safe_dump(args_mod_plain(args)))
    monkeypatch.chdir(tmp_path)
    assert parse_args(["--config", "hyperparameters.yaml"]) == args
    assert parse_args(["--config", TINY, "--resume", "auto"]).resume == "auto"


def args_mod_plain(args):
    from lit_gpt.io.hyperparameters import plain

    return plain(args.to_dict())


BAD_NUMBERS = {
    "--grad_clip nan": "--grad_clip 'nan': must be a finite number",
    "--weight_decay nan": "--weight_decay 'nan': must be a finite number",
    "--learning_rate inf": "--learning_rate 'inf': must be a finite number",
    "--seed -1": "--seed -1: must be in [0, 9223372036854775807]",
    f"--seed {2**64 + 1}": f"--seed {2**64 + 1}: must be in [0, 9223372036854775807]",
    "--seed 1.5": "--seed '1.5': expected an integer",
    "--micro_batch_size 10000000": "--micro_batch_size 10000000: 10000000 x 256 tokens per micro batch cannot fit",
    "--global_batch_size 10000000 --micro_batch_size 16": "--global_batch_size 10000000: 10000000 x 256 tokens",
    "--global_batch_size 40 --micro_batch_size 16": "--micro_batch_size 16 does not divide the per-device batch of 40",
    "--devices 4 --global_batch_size 40 --micro_batch_size 16":
        "--micro_batch_size 16 does not divide the per-device batch of 10 sequences (global_batch_size 40 / 4 processes)",
    "--mask_span 0": "--mask_span 0: must be >= 1",
    "--devices 0": "--devices 0: must be >= 1, or -1",
    "--devices -2": "--devices -2: must be >= 1, or -1 for every visible GPU",
    "--eval_iters -1": "--eval_iters -1: must be >= 0",
    "--max_steps 0": "--max_steps 0: must be >= 1",
    "--logger bogus": "--logger 'bogus': must be one of csv, tensorboard, wandb",
    "--block_size nan": "--block_size 'nan': expected an integer or null",
    "--max_steps 2.5": "--max_steps '2.5': expected an integer or null",
    "--precision fp8": "--precision 'fp8': must be one of bf16-mixed, bf16-true, 16-mixed, 32-true or null",
    "--peak_tflops inf": "--peak_tflops 'inf': must be a finite number",
    "--mask_rati 0.1": "unrecognized arguments: --mask_rati 0.1 (did you mean --mask_ratio?)",
}


@pytest.mark.parametrize("flags", sorted(BAD_NUMBERS))
def test_bad_numbers_are_refused_with_one_line_naming_the_setting(flags):
    with pytest.raises(UserError) as err:
        parse_args(["--config", TINY, *flags.split()])
    assert str(err.value).startswith(BAD_NUMBERS[flags]) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("flags", ["--grad_clip nan", "--seed -1", "--micro_batch_size 10000000"])
def test_bad_numbers_from_the_shell_exit_2_before_anything_starts(flags, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py"), "--config", TINY,
                           "--out_dir", str(out), *flags.split()], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {BAD_NUMBERS[flags]}") and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists()


def test_a_flag_without_a_value_is_true():
    args = parse_args(["--config", TINY, "--activation_checkpointing", "--dry_run"])
    assert args.activation_checkpointing is True and args.dry_run is True
    assert parse_args(["--config", TINY, "--dry_run", "--compile", "false"]).compile is False
    assert parse_args(["--config", TINY, "--dry_run", "0"]).dry_run is False


def test_python_api_is_checked_the_same_way():
    with pytest.raises(UserError, match=r"--grad_clip nan: must be a finite number"):
        PretrainArgs(max_steps=1, grad_clip=float("nan"))
    with pytest.raises(UserError, match=r"settings: unknown setting 'mask_ration' \(did you mean mask_ratio"):
        PretrainArgs(max_steps=1, mask_ration=0.1)
    args = PretrainArgs(max_steps=1, meap={"mask_ratio": 0.2})
    assert args.mask_ratio == args.meap.mask_ratio == 0.2 and args.replace(seed=5).optimizer.seed == 5


def test_a_new_setting_is_one_field(tmp_path, monkeypatch, capsys):
    """One field added to one slice is in --help, parses from the command line and recipes, and is recorded."""

    @dataclasses.dataclass
    class Meap(args_mod.MeapSettings):
        mask_token_budget: int = args_mod.setting(7, ge=1)
        """an extra setting added by a test"""

    slices = {**args_mod.SLICES, "meap": Meap}
    monkeypatch.setattr(args_mod, "SLICES", slices)
    monkeypatch.setattr(args_mod, "HINTS", args_mod.field_hints(*slices.values()))
    monkeypatch.setattr(args_mod, "SETTINGS", {n: s for s, c in slices.items() for n in args_mod.field_hints(c)})
    monkeypatch.setitem(PretrainArgs.__annotations__, "meap", Meap)
    import lit_gpt.pretrain.recipe as recipe_mod

    for name in ("SLICES", "HINTS", "SETTINGS"):
        monkeypatch.setattr(recipe_mod, name, getattr(args_mod, name))

    help_text = build_parser().format_help()
    assert "--mask_token_budget" in help_text and "an extra setting added by a test" in help_text
    assert parse_args(["--config", TINY, "--mask_token_budget", "9"]).mask_token_budget == 9
    recipe = tmp_path / "r.py"
    recipe.write_text(f'base = "{TINY}"\nmask_token_budget = 11\n')
    args = parse_args(["--config", str(recipe)])
    assert args.meap.mask_token_budget == 11
    with pytest.raises(UserError, match="--mask_token_budget 0: must be >= 1"):
        parse_args(["--config", str(recipe), "--meap.mask_token_budget", "0"])

    from lit_gpt.io.hyperparameters import write_hyperparameters

    path = write_hyperparameters(tmp_path, args.to_dict())
    assert yaml.safe_load(path.read_text())["meap"]["mask_token_budget"] == 11
    assert parse_args(["--config", str(path)]) == args
