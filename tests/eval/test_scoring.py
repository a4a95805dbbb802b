"""Answer matching against hand-worked examples."""

import pytest

from lit_gpt.eval.scoring import best_subspan_em, exact_match, first_line, normalize_answer, score, substring_match


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("a an the cat", "cat"),
        ("Theater, an art.", "theater art"),  # articles only as whole words
        ('"3f25-ab9c"', "3f25ab9c"),
        ("  \n", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match():
    assert exact_match("The Eiffel tower.", ["eiffel tower"])
    assert exact_match("71432", "71432")
    assert exact_match("Paris", ["London", "paris"])
    assert not exact_match("It is the Eiffel Tower", ["Eiffel Tower"])
    assert not exact_match("714321", "71432")
    assert not exact_match("anything", [])


def test_substring_match():
    assert substring_match("The pass key is 71432.", "71432")
    assert substring_match("EIFFEL tower", ["eiffel"])
    assert not substring_match("7143", "71432")
    assert not substring_match("The pass key is 71423.", "71432")
    assert not substring_match("anything", [""])  # an empty answer matches nothing


def test_best_subspan_em():
    assert best_subspan_em("It is the Eiffel Tower, in Paris", ["Eiffel Tower"])
    assert best_subspan_em('"b612c058-3ca7-4ffb"', ["b612c058-3ca7-4ffb"])
    assert best_subspan_em("the answer is Barack Obama.", ["Obama", "Barack Hussein Obama"])
    assert not best_subspan_em("Paris", ["Eiffel Tower"])
    assert not best_subspan_em("Paris", ["the"])  # an answer that normalizes to nothing


def test_first_line_and_score():
    assert first_line("\n  71432 \nmore text") == "71432"
    assert first_line("") == ""
    # only the first line counts: an answer further down is not credited
    assert score("71423.\nThe pass key is 71432", "71432") == {"exact": False, "substring": False, "best_subspan_em": False}
    assert score(" 71432.\n", "71432") == {"exact": True, "substring": True, "best_subspan_em": True}
    assert score(" 71432. Remember it.", "71432") == {"exact": False, "substring": True, "best_subspan_em": True}
