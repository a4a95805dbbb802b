"""Recipes are read as data with `ast` (lit_gpt/pretrain/recipe.py): nothing in them ever runs."""

import os

import pytest

from lit_gpt.config import Config
from lit_gpt.errors import UserError
from lit_gpt.pretrain import PretrainArgs
from lit_gpt.pretrain.args import SETTINGS, check_batch_layout
from lit_gpt.pretrain.cli import main as pretrain_main
from lit_gpt.pretrain.recipe import build_parser, load_recipe, parse_args, read_recipe_values
from tests.pretrain_helpers import REPO


def test_code_in_a_recipe_is_refused_even_for_help_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    recipe = tmp_path / "evil.py"
    recipe.write_text(f'"""Looks like a recipe."""\nmask_ratio = 0.15\nimport os\nos.system("touch {marker}")\n')
    with pytest.raises(SystemExit) as exit_:
        pretrain_main(["--config", str(recipe), "--help"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert f"{recipe}:3: an import is not allowed" in err
    assert not marker.exists()


@pytest.mark.parametrize(
    "line, what",
    [
        ("import os", "an import"),
        ("from os import system", "an import"),
        ("max_steps = len('abc')", "a call"),
        ("max_steps = other", "a name"),
        ("out_dir = __import__('os').getcwd()", "a call"),
        ("model_overrides = {k: 1 for k in 'ab'}", "a comprehension"),
        ("out_dir = f'out/{1}'", "an f-string"),
        ("out_dir = 'out'.upper", "an attribute"),
        ("max_steps = (lambda: 3)", "a lambda"),
        ("def max_steps(): pass", "a function definition"),
        ("class X: pass", "a class definition"),
        ("max_steps += 1", "an augmented assignment"),
        ("max_steps = min_lr = 1", "an assignment to several names"),
        ("print('hi')", "an expression statement"),
        ("max_tokens = 10 ** 10 ** 10", "a power with more than 400 digits"),
        ("max_tokens = ((10 ** 64) ** 64) ** 64", "a power with more than 400 digits"),
        ("out_dir = 'out' + '/x'", "arithmetic on 'out'"),
        ("max_steps = True * 3", "arithmetic on True"),
        ("max_steps = {1, 2}", "a set"),
        ("max_steps = 1 if True else 2", "a conditional expression"),
        ("max_steps = [1][0]", "a subscript"),
        ("max_steps = 7 // 2", "the operator FloorDiv"),
        ("flag = not True", "the operator Not"),
    ],
)
def test_anything_but_literal_data_is_refused_with_the_line(line, what):
    with pytest.raises(UserError) as err:
        read_recipe_values(f'"""doc"""\nseed = 1\n{line}\n', "r.py")
    message = str(err.value)
    assert message.startswith("recipe r.py:3: ") and what in message and "\n" not in message, message


def test_literals_and_arithmetic_of_numbers_are_data():
    source = '''"""A docstring."""
# comments are fine
max_tokens = 2 * 1_000_000_000
global_batch_size = 256
tokens_per_step = 256 * 4096
learning_rate = 4e-4
min_lr = 4e-4 / 10
negative = -1
power = 2 ** 10
mixed = (1 + 2) * 3 - 4
flag = True
nothing = None
text = "out/meap"
model_overrides = {"n_layer": 2, "sizes": [1, -2.5, (3, "x")], "nested": {"a": None}}
'''
    assert read_recipe_values(source, "r.py") == {
        "max_tokens": 2_000_000_000, "global_batch_size": 256, "tokens_per_step": 1_048_576, "learning_rate": 0.0004,
        "min_lr": 0.0004 / 10, "negative": -1, "power": 1024, "mixed": 5, "flag": True, "nothing": None,
        "text": "out/meap", "model_overrides": {"n_layer": 2, "sizes": [1, -2.5, (3, "x")], "nested": {"a": None}},
    }


def test_a_refused_base_is_named_and_a_yaml_recipe_loads(tmp_path):
    (tmp_path / "base.py").write_text("import os\n")
    (tmp_path / "child.py").write_text('base = "base.py"\nmask_ratio = 0.1\n')
    with pytest.raises(UserError, match=r"base.py:1: an import is not allowed"):
        load_recipe(tmp_path / "child.py")
    (tmp_path / "run.yaml").write_text("mask_ratio: 0.05\nmax_steps: 10\nmodel_overrides: {n_layer: 2}\n")
    assert load_recipe(tmp_path / "run.yaml") == {"mask_ratio": 0.05, "max_steps": 10, "model_overrides": {"n_layer": 2}}
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(UserError, match="expected a mapping of settings"):
        load_recipe(tmp_path / "bad.yaml")


RECIPES = sorted((REPO / "pretrained").glob("*.py"))


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_loads_and_validates(path):
    values = load_recipe(path)
    if path.name.startswith("_"):  # a base shared by recipes, not a run: it sets no budget
        assert "max_steps" not in values and "max_tokens" not in values
        return
    args = PretrainArgs(**values)
    config = Config.from_name(args.model_name, **args.model_overrides)
    if not args.vocab_from_tokenizer:
        assert config.padded_vocab_size == 32064  # LLaMA-2's 32000 tokens + [MASK], padded
    if path.name.startswith(("meap_", "ntp_")):
        assert values["out_dir"].startswith("out/") and args.out_dir == os.path.abspath(values["out_dir"])
        check_batch_layout(args, 1 if "tiny" in path.name else 8)


@pytest.mark.usefixtures("one_thread")
def test_recipes_are_distinct_and_ntp_twins_differ_only_in_the_mask():
    loaded = {p.stem: PretrainArgs(**load_recipe(p)).flat() for p in RECIPES if not p.stem.startswith("_")}
    assert loaded["meap_1b_mask0.15"] == loaded["meap_1b"]  # the default ratio: one run, two names
    out_dirs = [r["out_dir"] for name, r in loaded.items() if name != "meap_1b_mask0.15"]
    assert len(set(out_dirs)) == len(out_dirs)
    for name, recipe in loaded.items():
        if name.startswith("ntp_"):
            twin = loaded["meap_" + name[4:]]
            assert recipe["mask_ratio"] == 0.0 and twin["mask_ratio"] > 0
            differ = {k for k in recipe if recipe[k] != twin[k]}
            assert differ == {"mask_ratio", "out_dir"}, (name, differ)
    assert loaded["meap_1b_mask0.2"]["mask_ratio"] == 0.2
    assert loaded["meap_1b_span50"]["mask_span"] == 50
    assert loaded["meap_0.1b_2b"]["max_steps"] == 1907 and loaded["meap_0.1b_2b"]["mask_ratio"] == 0.1
    assert loaded["meap_1b_60b"]["model_name"] == "tiny_LLaMA_1b_mask"
    base = loaded["meap_1b"]
    assert (base["global_batch_size"], base["micro_batch_size"], base["learning_rate"], base["min_lr"]) == (256, 8, 4e-4, 4e-5)


@pytest.mark.usefixtures("one_thread")
def test_cli_overrides_every_setting_named_in_the_issue(tmp_path):
    names = ["train_data_dir", "val_data_dir", "tokenizer_dir", "out_dir", "devices", "num_nodes", "precision",
             "micro_batch_size", "global_batch_size", "max_steps", "max_tokens", "learning_rate", "mask_ratio",
             "mask_span", "seed", "log_interval", "eval_interval", "eval_iters", "save_interval", "resume", "logger"]
    assert set(names) <= set(SETTINGS)
    args = parse_args([
        "--config", str(REPO / "pretrained" / "meap_1b_mask0.05.py"), "--mask_ratio", "0.2", "--max_tokens", "2e9",
        "--devices", "4", "--resume", "auto", "--model_overrides", '{"n_layer": 3}', "--val_data_dir", "none",
        "--mask_scheme", "upstream",
    ])
    assert (args.mask_ratio, args.max_tokens, args.devices, args.resume) == (0.2, 2_000_000_000, 4, "auto")
    assert args.model_overrides == {"n_layer": 3} and args.val_data_dir is None and args.mask_scheme == "upstream"
    assert args.model_name == "tiny_LLaMA_1b_mask" and args.out_dir == os.path.abspath("out/meap_1b_mask0.05")

    help_text = build_parser().format_help()
    for name in SETTINGS:
        assert f"--{name}" in help_text


@pytest.mark.usefixtures("one_thread")
def test_recipe_base_chain_and_dict_merge(tmp_path):
    (tmp_path / "a.py").write_text('model_name = "micro_LLaMA"\nmodel_overrides = {"n_layer": 2, "n_embd": 32}\nmax_steps = 5\n')
    (tmp_path / "b.py").write_text('base = "a.py"\nmodel_overrides = {"n_layer": 3}\nmask_ratio = 0\n')
    assert load_recipe(tmp_path / "b.py") == {
        "model_name": "micro_LLaMA", "model_overrides": {"n_layer": 3, "n_embd": 32}, "max_steps": 5, "mask_ratio": 0.0,
    }
