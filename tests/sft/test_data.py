"""lit_gpt.sft.data: local JSON/JSONL loading, tokenization into answer flags, the MEAP collator."""

import json

import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.sft import IGNORE_INDEX, get_template
from lit_gpt.sft.data import (
    MEAPCollator,
    find_data_files,
    record_to_messages,
    select_trainable,
    tokenize_conversation,
    tokenize_files,
)
from lit_gpt.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(llama_tokenizer_dir):
    """The 32000-token LLaMA-style sentencepiece model shipped in mistral-common (SPEC §7)."""
    return load_tokenizer(llama_tokenizer_dir)


ALPACA = [
    {"instruction": "Name a color.", "input": "", "output": "Blue."},
    {"instruction": "Translate.", "input": "Hallo", "output": "Hello"},
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there."},
                       {"from": "human", "value": "Count."}, {"from": "gpt", "value": "One two three."}]},
    {"conversations": [{"from": "gpt", "value": "I start."}, {"from": "human", "value": "Ok"}, {"from": "gpt", "value": "Fine."},
                       {"from": "human", "value": "unanswered"}]},
    {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]},
]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_find_data_files(tmp_path):
    with pytest.raises(UserError, match="--train_file: file not found: .*missing.jsonl"):
        find_data_files(str(tmp_path / "missing.jsonl"), None, "train")
    with pytest.raises(UserError, match="--validation_file_dir: no .json or .jsonl files under"):
        find_data_files(None, str(tmp_path), "validation")
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl", ALPACA)
    (tmp_path / "a.json").write_text(json.dumps(ALPACA))
    (tmp_path / "notes.txt").write_text("not data")
    assert find_data_files(None, str(tmp_path), "train") == [tmp_path / "a.json", tmp_path / "sub" / "b.jsonl"]


def test_record_to_messages():
    assert record_to_messages({"instruction": "I", "input": None, "output": "O", "system": "S"}, "f", 1) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "I", "input": ""},
        {"role": "assistant", "content": "O"},
    ]
    # a leading assistant message and a trailing unanswered user message are dropped
    assert record_to_messages(SHAREGPT[1], "f", 2) == [
        {"role": "user", "content": "Ok"}, {"role": "assistant", "content": "Fine."}
    ]
    assert record_to_messages(SHAREGPT[2], "f", 3) is None  # no user/assistant exchange
    openai_style = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "a"}]}
    assert record_to_messages(openai_style, "f", 1)[0] == {"role": "system", "content": "S"}
    with pytest.raises(UserError, match=r"data.jsonl: record 7 has neither instruction/output nor conversations"):
        record_to_messages({"text": "plain"}, "data.jsonl", 7)
    with pytest.raises(UserError, match=r"f: record 4 has an instruction but no output"):
        record_to_messages({"instruction": "x", "input": ""}, "f", 4)
    assert record_to_messages({"conversations": []}, "f", 5) is None
    with pytest.raises(UserError, match="record 2: conversation turn 1 has unknown speaker .robot."):
        record_to_messages({"conversations": [{"from": "robot", "value": "x"}]}, "f", 2)
    wrong_types = [
        ({"conversations": "hi there"}, r"f: record 3: conversations must be a list of \{from, value\} turns, got str"),
        ({"conversations": [{"from": "human", "value": "q"}, "a"]}, r"record 3: conversation turn 2 is not a \{from, value\}"),
        ({"conversations": [{"value": "q"}]}, r"record 3: conversation turn 1 has unknown speaker None"),
        ({"instruction": "i", "input": 3, "output": "o"}, r"record 3: input must be a string, got int 3"),
        ({"instruction": ["i"], "output": "o"}, r"record 3: instruction must be a string, got list"),
        ({"instruction": "i", "output": {"text": "o"}}, r"record 3: output must be a string, got dict"),
        ({"instruction": "i", "output": "o", "system": 1}, r"record 3: the system prompt must be a string, got int 1"),
        ([1, 2], r"f: record 3 is not a JSON object"),
    ]
    for record, message in wrong_types:
        with pytest.raises(UserError, match=message):
            record_to_messages(record, "f", 3)


def test_answer_flags_follow_the_rendered_text(tokenizer):
    template = get_template("vicuna")
    segments = template.render(record_to_messages(SHAREGPT[0], "f", 1), tokenizer.eos_token)
    ids, flags = tokenize_conversation(segments, tokenizer, bos_id=1)
    text = "".join(s.text for s in segments)
    assert ids == [1] + tokenizer(text, add_special_tokens=False)["input_ids"]  # the full text's own tokenization
    answer = [i for i, f in zip(ids, flags) if f]
    assert tokenizer.decode(answer) == "Hello there.</s> One two three."
    prompt_end = len(ids) - 1 - flags[::-1].index(0)
    assert tokenizer.decode(ids[1 : prompt_end + 1]).endswith("USER: Count. ASSISTANT:")


def test_tokenize_files_json_and_jsonl(tmp_path, tokenizer):
    json_file = tmp_path / "alpaca.json"
    json_file.write_text(json.dumps(ALPACA))
    jsonl_file = write_jsonl(tmp_path / "sharegpt.jsonl", SHAREGPT)
    template = get_template("alpaca")
    data = tokenize_files([json_file, jsonl_file], tokenizer, template, cache_dir=str(tmp_path / "cache"))
    assert len(data) == 5
    assert list(data["usable"]) == [True, True, True, True, False]
    first = data[1]
    answer = [i for i, f in zip(first["input_ids"], first["is_answer"]) if f]
    assert tokenizer.decode(answer) == "Hello"
    assert "### Input:\nHallo" in tokenizer.decode(first["input_ids"])
    limited = tokenize_files([json_file, jsonl_file], tokenizer, template, max_records=3, cache_dir=str(tmp_path / "cache"))
    assert len(limited) == 3


def test_bad_records_and_files_name_the_file(tmp_path, tokenizer):
    bad = write_jsonl(tmp_path / "bad.jsonl", ALPACA + [{"prompt": "x", "completion": "y"}])
    with pytest.raises(UserError, match=r"bad.jsonl: record 3 has neither instruction/output nor conversations"):
        tokenize_files([bad], tokenizer, get_template("vicuna"), cache_dir=str(tmp_path / "cache"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"instruction": "x", "output": ')
    with pytest.raises(UserError, match=r"broken.json: record 1 is not valid JSON"):
        tokenize_files([broken], tokenizer, get_template("vicuna"), cache_dir=str(tmp_path / "cache"))


def test_select_trainable_counts(tmp_path, tokenizer):
    records = [
        {"instruction": "short", "input": "", "output": "ok"},
        {"instruction": "word " * 300, "input": "", "output": "lost"},  # prompt fills max_length
        {"instruction": "long answer", "input": "", "output": "yes " * 120},  # cut, copy-eligible
    ] + SHAREGPT[2:]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    data = tokenize_files([path], tokenizer, get_template("alpaca"), cache_dir=str(tmp_path / "cache"))
    kept, summary = select_trainable(data, max_length=128, min_answer_tokens=50)
    assert (summary.records, summary.unusable, summary.dropped, summary.cut, summary.copy_eligible, summary.examples) == (4, 1, 1, 1, 1, 2)
    assert len(kept) == 2 and kept.column_names == ["input_ids", "is_answer", "masked_copy"]


def features(n_prompt=5, n_answer=60, first=100):
    return {"input_ids": list(range(first, first + n_prompt + n_answer)), "is_answer": [0] * n_prompt + [1] * n_answer}


def test_collator_pads_and_redraws_masks():
    collator = MEAPCollator(mode="concat", mask_ratio=0.1, mask_token_id=7, eos_token_id=2, pad_token_id=0,
                            max_length=512, min_answer_tokens=50, seed=1, pad_to_multiple_of=8)
    batch = collator([features(), features(n_answer=10)])
    assert batch["input_ids"].shape == (2, 136)  # 2 * 66 = 132, padded to a multiple of 8
    assert batch["attention_mask"][0].tolist() == [1] * 132 + [0] * 4
    assert batch["attention_mask"][1].tolist() == [1] * 16 + [0] * 120  # short answer: no copy
    assert (batch["labels"][:, -4:] == IGNORE_INDEX).all() and (batch["input_ids"][1, 16:] == 0).all()
    copy = batch["input_ids"][0, 66:132]
    assert int((copy == 7).sum()) == 6
    masked_at = torch.nonzero(copy == 7).flatten()
    assert torch.equal(batch["labels"][0, 66 + masked_at], batch["input_ids"][0, masked_at])
    again = collator([features(), features(n_answer=10)])
    assert not torch.equal(again["input_ids"], batch["input_ids"])  # a new draw, new masks
    # samples, masked copies, masked tokens, loss tokens (60 + EOS, 6 + 10 + EOS), dropped, sequences
    assert batch["meap_counts"].tolist() == [2, 1, 6, 78, 0, 2]


def test_collator_modes():
    common = dict(mask_ratio=0.1, mask_token_id=7, eos_token_id=2, pad_token_id=0, max_length=512, seed=0)
    separate = MEAPCollator(mode="separate", **common)([features(), features()])
    assert separate["input_ids"].shape == (4, 66)
    ntp_only = MEAPCollator(mode="concat", **common)([dict(features(), ntp_only=True)])
    assert ntp_only["input_ids"].shape == (1, 66) and 7 not in ntp_only["input_ids"]


def test_collator_refuses_a_batch_with_nothing_to_learn():
    """A batch whose every answer starts past max_length builds no example: one clear error, not an empty batch."""
    collator = MEAPCollator(mode="concat", mask_ratio=0.1, mask_token_id=7, eos_token_id=2, pad_token_id=0,
                            max_length=8)
    with pytest.raises(ValueError, match="every sample of this batch was dropped"):
        collator([features(n_prompt=20), features(n_prompt=30)])


def test_fresh_masks_every_epoch_with_dataloader_workers():
    import datasets

    data = datasets.Dataset.from_dict({"input_ids": [features()["input_ids"]] * 2, "is_answer": [features()["is_answer"]] * 2})
    collator = MEAPCollator(mode="concat", mask_ratio=0.1, mask_token_id=7, eos_token_id=2, pad_token_id=0, max_length=512)
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=collator, num_workers=1)
    epochs = [next(iter(loader))["input_ids"] for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])
    assert not torch.equal(epochs[0][0], epochs[0][1])  # nor the same mask for two samples


def test_utf8_check_names_the_line(tmp_path):
    from lit_gpt.sft.data import check_utf8

    path = tmp_path / "d.jsonl"
    path.write_bytes("{\"a\": \"日本\"}\n".encode() * 3)
    check_utf8(path)  # multi-byte characters are fine
    path.write_bytes("{\"a\": \"日本\"}\n".encode() * 3 + "{\"a\": \"café\"}\n".encode("latin-1"))
    offset = 3 * len("{\"a\": \"日本\"}\n".encode()) + len('{"a": "caf')
    with pytest.raises(UserError, match=rf"d.jsonl: line 4 is not UTF-8 text \(byte 0xe9 at offset {offset}\)"):
        check_utf8(path)
