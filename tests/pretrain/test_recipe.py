"""Recipes are read as data with `ast` (lit_gpt/pretrain/recipe.py): nothing in them ever runs."""

import pytest

from lit_gpt.errors import UserError
from lit_gpt.pretrain.cli import main as pretrain_main
from lit_gpt.pretrain.recipe import load_recipe, read_recipe_values


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
