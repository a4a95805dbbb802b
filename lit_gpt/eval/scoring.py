"""Answer matching for generated text; generations run on past the answer, so `score` cuts them to their first line."""

from __future__ import annotations

import re
import string
from typing import Callable, Iterable, Union

Answers = Union[str, Iterable[str]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _as_list(answers: Answers) -> list[str]:
    return [answers] if isinstance(answers, str) else list(answers)


def normalize_answer(text: str) -> str:
    """SQuAD's normalization: lowercase, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def first_line(generation: str) -> str:
    return next((line.strip() for line in generation.splitlines() if line.strip()), "")


def exact_match(prediction: str, answers: Answers) -> bool:
    normalized = normalize_answer(prediction)
    return any(normalized == normalize_answer(answer) for answer in _as_list(answers))


def substring_match(prediction: str, answers: Answers) -> bool:
    """An answer occurs in the prediction, ignoring case (RULER's string match)."""
    lowered = prediction.lower()
    return any(answer and answer.lower() in lowered for answer in _as_list(answers))


def best_subspan_em(prediction: str, answers: Answers) -> bool:
    """A normalized answer occurs in the normalized prediction (lost in the middle)."""
    normalized = normalize_answer(prediction)
    return any(normalize_answer(answer) in normalized for answer in _as_list(answers) if normalize_answer(answer))


METRICS: dict[str, Callable[[str, Answers], bool]] = {
    "exact": exact_match,
    "substring": substring_match,
    "best_subspan_em": best_subspan_em,
}


def score(generation: str, answers: Answers) -> dict[str, bool]:
    prediction = first_line(generation)
    return {name: metric(prediction, answers) for name, metric in METRICS.items()}


def scored(generation: str, answers: Answers, metric: str) -> dict:
    """A generation's fields in the evaluations' records; `correct` is by `metric`."""
    scores = score(generation, answers)
    return {"predicted": first_line(generation), "generation": generation, "correct": scores[metric], "scores": scores}
