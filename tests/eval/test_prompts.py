"""Retrieval prompts: requested length in tokens and needle depth, checked by re-tokenizing the text."""

import gzip
import json

import pytest

from lit_gpt.errors import UserError
from lit_gpt.eval.haystack import load_corpus
from lit_gpt.eval.prompts import SamplePrompts, build_prompts
from lit_gpt.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(llama_tokenizer_dir):
    return load_tokenizer(llama_tokenizer_dir)


def expected_needle(task, key, value):
    # Written out here rather than taken from the templates under test.
    return {
        "passkey": f"The pass key is {value}. Remember it. {value} is the pass key.",
        "niah": f"The special magic number for {key} is: {value}.",
        "kv": f'"{key}": "{value}"',
    }[task]


def n_tokens(tokenizer, text):
    # rstrip: a trailing space would be a token of its own at the end of a cut text
    return len(tokenizer(text.rstrip())["input_ids"])


def check_prompt(tokenizer, prompt, task, length, depth):
    text = prompt.text
    tolerance = 0.02 * length
    total = len(tokenizer(text)["input_ids"])
    assert abs(total - length) <= tolerance, (total, length)
    assert prompt.input_ids == tokenizer(text)["input_ids"]

    needle = expected_needle(task, prompt.key, prompt.answer)
    assert text.count(needle) == 1
    assert text.count(prompt.answer) == needle.count(prompt.answer)  # the value is nowhere else

    # Context: after the instruction, before the question (which starts with the last blank line).
    if task == "kv":
        context_start = text.index("JSON data:\n") + len("JSON data:\n")
    else:
        context_start = text.index("\n\n") + 2
    context_end = text.rindex("\n\n")
    needle_char = text.index(needle)
    assert context_start <= needle_char and needle_char + len(needle) <= context_end

    cs, ce, ns = (n_tokens(tokenizer, text[:c]) for c in (context_start, context_end, needle_char))
    needle_len = len(tokenizer(needle, add_special_tokens=False)["input_ids"])
    expected = cs + depth * (ce - cs - needle_len)
    assert abs(ns - expected) <= tolerance, (ns, expected, length, depth)
    # the positions the prompt reports (written to results.json) agree with the re-tokenization
    assert abs(prompt.needle_start - ns) <= 2
    assert abs(prompt.needle_depth - depth) * length <= tolerance
    return text[context_start:context_end]


@pytest.mark.parametrize("task", ["passkey", "niah", "kv"])
@pytest.mark.parametrize("length", [512, 1000, 3000])
def test_length_and_depth(tokenizer, task, length):
    for depth in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
        prompt = SamplePrompts(tokenizer, task, length, sample_index=1, seed=3).at(depth)
        context = check_prompt(tokenizer, prompt, task, length, depth)
        if task == "kv":
            pairs = json.loads(context)  # the context is a valid JSON object
            assert pairs[prompt.key] == prompt.answer
            assert len(pairs) >= 3


def test_niah_with_a_corpus_file(tokenizer, tmp_path):
    docs = [f"Document {i} talks about zebra{i} and the weather. It has a second sentence here." for i in range(300)]
    path = tmp_path / "c4-validation.00000-of-00008.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc, "timestamp": "2019-04-25T12:57:54Z", "url": "https://example.com"}) + "\n")
    corpus = load_corpus(path)
    assert corpus.documents == docs
    for depth in (0.0, 0.5, 1.0):
        prompt = SamplePrompts(tokenizer, "niah", 2048, sample_index=0, seed=0, corpus=corpus).at(depth)
        context = check_prompt(tokenizer, prompt, "niah", 2048, depth)
        assert "zebra" in context and "talks about" in context


def test_samples_are_reproducible_and_share_the_needle_across_depths(tokenizer):
    a = build_prompts(tokenizer, "niah", [600], [0.0, 1.0], samples=2, seed=7)
    b = build_prompts(tokenizer, "niah", [600], [0.0, 1.0], samples=2, seed=7)
    assert [p.text for p in a] == [p.text for p in b]
    assert SamplePrompts(tokenizer, "niah", 600, sample_index=1, seed=7).at(1.0).text == a[3].text
    assert [(p.sample_index, p.depth) for p in a] == [(0, 0.0), (0, 1.0), (1, 0.0), (1, 1.0)]
    assert a[0].answer == a[1].answer and a[0].key == a[1].key  # same sample, other depth
    assert a[0].answer != a[2].answer  # other sample
    c = SamplePrompts(tokenizer, "niah", 600, sample_index=0, seed=8).at(0.0)
    assert c.answer != a[0].answer


def test_bad_requests(tokenizer, tmp_path):
    with pytest.raises(UserError, match="too short"):
        SamplePrompts(tokenizer, "kv", 64).at(0.5)
    with pytest.raises(UserError, match="outside"):
        SamplePrompts(tokenizer, "passkey", 512).at(1.5)
    with pytest.raises(UserError, match="unknown task"):
        SamplePrompts(tokenizer, "qa", 512).at(0.5)
    with pytest.raises(UserError, match="not found"):
        load_corpus(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"content": "no text"}\n')
    with pytest.raises(UserError, match="record 2"):
        load_corpus(bad)
