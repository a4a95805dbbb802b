"""Lost-in-the-middle multi-document QA: document arrangement, the prompt, and a tiny model end to end."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from lit_gpt.errors import UserError
from lit_gpt.eval import multidoc_qa
from lit_gpt.eval.multidoc_qa import arrange, default_gold_positions, qa_prompt, read_examples


def write_examples(path: Path, n_examples=3, n_docs=5, gold_at=1):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for q in range(n_examples):
            ctxs = [{"title": f"Title {q}.{d}", "text": f"Distractor text {d}.", "hasanswer": False, "isgold": False} for d in range(n_docs - 1)]
            ctxs.insert(gold_at, {"title": f"Gold {q}", "text": f"The answer is city{q}.", "hasanswer": True, "isgold": True})
            f.write(json.dumps({"question": f"where is thing {q}?", "answers": [f"city{q}"], "ctxs": ctxs}) + "\n")
    return path


def test_gold_document_moves_and_prompt_matches_the_paper(tmp_path):
    (example, *_) = read_examples(write_examples(tmp_path / "qa.jsonl.gz"))
    assert example.gold["title"] == "Gold 0" and len(example.distractors) == 4
    for position in range(5):
        docs = arrange(example, position)
        assert [d["title"] for d in docs].index("Gold 0") == position
        assert [d["title"] for d in docs if d["title"] != "Gold 0"] == [f"Title 0.{d}" for d in range(4)]
    docs = arrange(example, 2, num_documents=3)
    assert [d["title"] for d in docs] == ["Title 0.0", "Title 0.1", "Gold 0"]

    prompt = qa_prompt("who?", docs[:2])
    assert prompt == (
        "Write a high-quality answer for the given question using only the provided search results "
        "(some of which might be irrelevant).\n\n"
        "Document [1](Title: Title 0.0) Distractor text 0.\n"
        "Document [2](Title: Title 0.1) Distractor text 1.\n\n"
        "Question: who?\nAnswer:"
    )


def test_default_positions():
    assert default_gold_positions(10) == [0, 4, 9]
    assert default_gold_positions(20) == [0, 4, 9, 14, 19]
    assert default_gold_positions(5) == [0, 4]


def test_bad_files(tmp_path):
    no_gold = tmp_path / "a.jsonl"
    no_gold.write_text(json.dumps({"question": "q", "answers": ["a"], "ctxs": [{"title": "t", "text": "x"}]}) + "\n")
    with pytest.raises(UserError, match="line 1 has no gold document"):
        read_examples(no_gold)
    broken = tmp_path / "b.jsonl"
    broken.write_text(json.dumps({"question": "q", "answers": ["a"], "ctxs": [{"text": "x", "isgold": True}]}) + "\n{oops\n")
    with pytest.raises(UserError, match="line 2 is not JSON"):
        read_examples(broken)
    (example,) = read_examples(broken, limit=1)
    with pytest.raises(UserError, match="gold position 3"):
        arrange(example, 3)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, llama_tokenizer_dir):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from lit_gpt.tokenizer import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny_llama")
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_corrupt_or_truncated_gzip_is_one_line_naming_the_file(tmp_path):
    good = write_examples(tmp_path / "good.jsonl.gz", n_examples=50).read_bytes()
    corrupt = bytearray(good)
    corrupt[len(good) // 2: len(good) // 2 + 16] = b"\xff" * 16
    for name, content in (("corrupt.jsonl.gz", bytes(corrupt)), ("truncated.jsonl.gz", good[: len(good) // 2]),
                          ("plain.jsonl.gz", b"not gzip at all")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match=rf"(could not read .*{name}: |{name} line \d+ is not JSON)") as err:
            read_examples(tmp_path / name)
        assert "\n" not in str(err.value)


def test_prompts_beyond_the_models_positions_are_refused(model_dir, tmp_path, capsys):
    data = write_examples(tmp_path / "long.jsonl.gz", n_examples=1, n_docs=40)
    out = tmp_path / "out"
    argv = ["--model_dir", model_dir, "--input_path", data, "--gold_positions", "0", "--out_dir", out,
            "--max_new_tokens", 2, "--device", "cpu"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        multidoc_qa.main([str(a) for a in argv])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert "long.jsonl.gz: the longest prompt + answer" in lines[0] and "exceed the model's 512 positions" in lines[0]
    assert "--allow_beyond_context" in lines[0] and not out.exists()
    results = multidoc_qa.main([str(a) for a in argv + ["--allow_beyond_context"]])
    assert results["settings"]["longest_prompt_tokens"] > 512
    assert "warning: " in capsys.readouterr().err


def test_end_to_end(model_dir, tmp_path, capsys):
    data = write_examples(tmp_path / "nq-open-5_total_documents_gold_at_1.jsonl.gz")
    out = tmp_path / "out"
    argv = ["--model_dir", model_dir, "--input_path", data, "--gold_positions", "0,2,4", "--out_dir", out,
            "--max_new_tokens", 5, "--batch_size", 4, "--device", "cpu"]  # fmt: skip
    results = multidoc_qa.main([str(a) for a in argv])
    saved = json.loads((out / "results.json").read_text())
    assert saved["accuracy"] == results["accuracy"]
    assert saved["settings"]["gold_positions"] == [0, 2, 4] and saved["settings"]["num_documents"] == 5
    records = saved["records"]
    assert len(records) == 9
    for position in (0, 2, 4):
        cell = [r["correct"] for r in records if r["gold_position"] == position]
        assert len(cell) == 3 and saved["accuracy"]["by_gold_position"][str(position)] == pytest.approx(sum(cell) / 3)
    assert {r["answers"][0] for r in records} == {"city0", "city1", "city2"}
    assert (out / "accuracy_by_position.png").read_bytes().startswith(b"\x89PNG")
    # one convention: the positions given are those printed, saved and plotted (0-based)
    printed = [line.split()[3] for line in capsys.readouterr().out.splitlines() if "gold at position" in line]
    assert printed == ["0", "2", "4"] == list(saved["accuracy"]["by_gold_position"])

    with pytest.raises(SystemExit) as exit_info:  # a second run does not replace the results
        multidoc_qa.main([str(a) for a in argv])
    assert exit_info.value.code == 2
    assert json.loads((out / "results.json").read_text()) == saved
