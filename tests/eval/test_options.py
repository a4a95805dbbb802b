"""The evaluations' shared options: a list option with an empty item is refused, naming it."""

import pytest


def test_an_empty_item_in_a_list_option_is_refused_naming_it(capsys):
    from lit_gpt.eval.cli import main as eval_main

    with pytest.raises(SystemExit) as exit_:
        eval_main(["retrieval", "--model_dir", "m", "--out_dir", "o", "--context_lengths", "128,,256"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "--context_lengths: '128,,256' has an empty item" in err
