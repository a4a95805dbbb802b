"""--preset upstream against a re-implementation of the upstream MEAP-SFT example construction.

The reference below is written from scitix/MEAP `MEAP-SFT/MEAP-SFT.py` (`preprocess_function`,
`filter_empty_labels`) and `MEAP-SFT/template.py` (`Conversation.get_dialog`, the llama3 template),
with the global `random` module replaced by a `random.Random` passed in. Our collator draws its
masks from a `random.Random` too, so with both generators seeded alike and the examples drawn in
upstream's order the comparison is exact, masked positions included.
"""

import json
import random

import pytest

from lit_gpt.errors import UserError
from lit_gpt.sft.data import MEAPCollator, SFTDataset, select_trainable, tokenize_files
from lit_gpt.sft.templates import get_template
from lit_gpt.sft.upstream import UPSTREAM_TEMPLATES, UpstreamSettings
from lit_gpt.tokenizer import load_tokenizer

LONG = ("the quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun "
        "and the birds sing softly in the old oak tree next to the river that runs past the farm ") * 2
RECORDS = [
    {"instruction": "Name a color.", "input": "", "output": "Blue."},
    {"instruction": "Summarize the text.", "input": "A fox, a dog and a cat.", "output": LONG},
    {"conversations": [{"from": "human", "value": "Who sleeps?"}, {"from": "gpt", "value": "The cat sleeps."},
                       {"from": "human", "value": "Tell me everything."}, {"from": "gpt", "value": LONG},
                       {"from": "human", "value": "And then?"}, {"from": "gpt", "value": "Nothing more."}]},
    {"conversations": [{"from": "human", "value": "Describe the farm."}, {"from": "gpt", "value": LONG}],
     "system_prompt": "You answer in one long sentence."},
    {"instruction": "Repeat: " + "word " * 40, "input": "", "output": LONG},  # long prompt: truncation below
]


# ---- the reference: upstream's code as read, global `random` replaced by `rng` --------------------

class Conversation:
    def __init__(self, system_prompt, prompt, sep):
        self.system_prompt, self.prompt, self.sep = system_prompt, prompt, sep

    def get_dialog(self, messages, system_prompt=""):
        system_prompt = system_prompt or self.system_prompt
        system_prompt = system_prompt + self.sep if system_prompt else ""
        convs = []
        for turn_idx, [user_query, bot_resp] in enumerate(messages):
            if turn_idx == 0:
                convs.append(system_prompt + self.prompt.format(query=user_query))
            else:
                convs.append(self.sep + self.prompt.format(query=user_query))
            convs.append(bot_resp)
        return convs


LLAMA3 = Conversation(
    system_prompt="<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful, excellent and smart assistant.",
    prompt="<|start_header_id|>user<|end_header_id|>\n\n{query}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    sep="<|eot_id|>",
)


def upstream_preprocess(examples, tokenizer, prompt_template, max_length, mask_ratio, rng):
    input_ids_list, targets_list = [], []
    roles = ["human", "gpt"]

    def get_dialog(examples_data):
        system_prompts = examples_data.get("system_prompt", "")
        for i, source in enumerate(examples_data["conversations"]):
            if len(source) < 2:
                continue
            data_role = source[0].get("from", "")
            if data_role not in roles or data_role != roles[0]:
                source = source[1:]
            if len(source) < 2:
                continue
            messages = []
            for j, sentence in enumerate(source):
                data_role = sentence.get("from", "")
                if data_role not in roles:
                    continue
                if data_role == roles[j % 2]:
                    messages.append(sentence["value"])
            if len(messages) % 2 != 0:
                continue
            history_messages = [[messages[k], messages[k + 1]] for k in range(0, len(messages), 2)]
            system_prompt = system_prompts[i] if system_prompts else None
            yield prompt_template.get_dialog(history_messages, system_prompt=system_prompt)

    for dialog in get_dialog(examples):
        for i in range(len(dialog) // 2):
            source_ids = tokenizer.encode(text=dialog[2 * i], add_special_tokens=(i == 0))
            target_ids = tokenizer.encode(text=dialog[2 * i + 1], add_special_tokens=False)
            input_sequence = source_ids + target_ids + [tokenizer.eos_token_id]
            if len(input_sequence) > max_length:
                input_sequence = input_sequence[: max_length - 1] + [tokenizer.eos_token_id]
            labels = [-100] * len(source_ids) + target_ids + [tokenizer.eos_token_id]
            if len(labels) > max_length:
                labels = labels[:max_length]
            input_ids_list.append(input_sequence)
            targets_list.append(labels)
        for i in range(len(dialog) // 2):
            source_ids = tokenizer.encode(text=dialog[2 * i], add_special_tokens=(i == 0))
            target_ids = tokenizer.encode(text=dialog[2 * i + 1], add_special_tokens=False)
            full_sequence = source_ids + target_ids
            if len(target_ids) > 50:
                target_start = len(source_ids)
                target_end = min(len(full_sequence), max_length - 1)
                num_masks = max(1, int((target_end - target_start) * mask_ratio))
                mask_positions = rng.sample(range(target_start, target_end), num_masks)
                masked_sequence = full_sequence[:target_end].copy()
                masked_labels = [-100] * len(masked_sequence)
                for pos in mask_positions:
                    masked_sequence[pos] = tokenizer.convert_tokens_to_ids("[MASK]")
                    masked_labels[pos] = full_sequence[pos]
                masked_sequence.append(tokenizer.eos_token_id)
                masked_labels.append(-100)
                input_ids_list.append(masked_sequence)
                targets_list.append(masked_labels)
    examples = [{"input_ids": i, "labels": l} for i, l in zip(input_ids_list, targets_list)]
    return [e for e in examples if not all(label == -100 for label in e["labels"])]  # filter_empty_labels


def as_sharegpt(record):
    """Alpaca as one human/gpt turn, the input after a blank line (upstream reads `conversations` only)."""
    if "conversations" in record:
        return record
    query = record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")
    return {"conversations": [{"from": "human", "value": query}, {"from": "gpt", "value": record["output"]}]}


# ---- the comparison -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A byte-level BPE trained here that adds BOS, with llama3's markers as special tokens, plus [MASK]."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    markers = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [LONG, json.dumps(RECORDS), "You are a helpful, excellent and smart assistant. system user assistant"]
    bpe.train_from_iterator(corpus * 3, trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>", "<s>", "</s>", *markers], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    ))
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder = tmp_path_factory.mktemp("bpe")
    PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            additional_special_tokens=markers).save_pretrained(folder)
    return load_tokenizer(folder)


def our_examples(tmp_path, tokenizer, records, max_length, mask_ratio, rng, mode="separate"):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=max_length, masked_copies=mode != "ntp")
    tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                               upstream=settings)
    kept, summary = select_trainable(tokenized, max_length=max_length, min_answer_tokens=settings.min_answer_tokens)
    collator = MEAPCollator(mode=mode, mask_ratio=mask_ratio, mask_token_id=tokenizer.convert_tokens_to_ids("[MASK]"),
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                            max_length=max_length, preset="upstream")
    collator.rng = lambda: rng
    dataset = SFTDataset(kept)
    examples = []
    for index in range(len(dataset)):  # one at a time, in the dataset's order: no padding
        batch = collator([dataset[index]])
        assert batch["attention_mask"].all()
        examples.append({"input_ids": batch["input_ids"][0].tolist(), "labels": batch["labels"][0].tolist()})
    return examples, summary


@pytest.mark.parametrize("max_length,mask_ratio", [(4096, 0.1), (100, 0.1), (100, 0.25)])
def test_examples_match_upstream_token_for_token(tmp_path, tokenizer, max_length, mask_ratio):
    reference_input = {"conversations": [as_sharegpt(r)["conversations"] for r in RECORDS],
                       "system_prompt": [r.get("system_prompt") for r in RECORDS]}
    expected = upstream_preprocess(reference_input, tokenizer, LLAMA3, max_length, mask_ratio, random.Random(7))
    ours, summary = our_examples(tmp_path, tokenizer, RECORDS, max_length, mask_ratio, random.Random(7))
    assert ours == expected
    # the case is not vacuous: every turn gives an example, every answer of more than 50 tokens a copy
    answers = [t["value"] for r in RECORDS for t in as_sharegpt(r)["conversations"] if t["from"] == "gpt"]
    n_long = sum(len(tokenizer.encode(a, add_special_tokens=False)) > 50 for a in answers)
    mask_id = tokenizer.convert_tokens_to_ids("[MASK]")
    copies = [e for e in expected if mask_id in e["input_ids"]]
    assert n_long >= 4 and summary.masked_copies == len(copies) == n_long
    assert summary.examples == len(expected) == len(answers) + n_long
    if max_length < 4096:  # both kinds of example are cut here, by upstream's rules
        cut = [e for e in expected if len(e["input_ids"]) == max_length]
        assert any(mask_id not in e["input_ids"] and e["input_ids"][-1] == tokenizer.eos_token_id
                   and e["labels"][-1] != tokenizer.eos_token_id for e in cut)
        assert any(mask_id in e["input_ids"] for e in cut)


def test_prompt_and_template_details(tmp_path, tokenizer):
    """What the equality above rests on, spelled out: no history, BOS and system prompt on turn 0 only."""
    record = RECORDS[2]
    ours, _ = our_examples(tmp_path, tokenizer, [record], 4096, 0.1, random.Random(0), mode="ntp")
    assert len(ours) == 3  # one example per turn, no copies in ntp mode
    first, second = (tokenizer.decode(e["input_ids"]) for e in ours[:2])
    assert first.startswith("<s>") and "You are a helpful, excellent and smart assistant." in first
    assert "<s>" not in second and "helpful" not in second and "Who sleeps?" not in second  # no history
    assert second.startswith("<|eot_id|><|start_header_id|>user")
    for example in ours:  # the answer ends with EOS, learned; no <|eot_id|> after it
        assert example["input_ids"][-1] == tokenizer.eos_token_id and example["labels"][-1] == tokenizer.eos_token_id
        assert not tokenizer.decode([t for t, l in zip(example["input_ids"], example["labels"]) if l != -100]
                                    ).rstrip("</s>").endswith("<|eot_id|>")


def test_masks_are_redrawn_on_every_draw(tokenizer):
    """Upstream freezes its masks in a cached dataset.map; ours change with every draw (a documented difference)."""
    ids = list(range(100, 110)) + list(range(200, 300))
    collator = MEAPCollator(mode="separate", mask_ratio=0.1, mask_token_id=7, eos_token_id=2, pad_token_id=2,
                            max_length=4096, preset="upstream")
    feature = {"input_ids": ids, "is_answer": [0] * 10 + [1] * 100, "masked_copy": True, "ntp_only": False}
    draws = [tuple(collator([feature])["input_ids"][0].tolist()) for _ in range(20)]
    assert len(set(draws)) > 1
    hit = set()
    for draw in draws:
        masked = [p for p, t in enumerate(draw) if t == 7]
        assert len(masked) == 10 and all(10 <= p < 110 for p in masked)
        hit |= set(masked)
    assert len(hit) > 50


def test_a_prompt_that_fills_max_length_gets_no_copy(tmp_path, tokenizer):
    """Upstream's random.sample raises on an empty answer range there; we skip the copy instead."""
    record = {"instruction": "word " * 200, "input": "", "output": LONG}
    ours, summary = our_examples(tmp_path, tokenizer, [record], 128, 0.1, random.Random(0))
    assert ours == [] and summary.dropped == 1 and summary.masked_copies == 0


def test_preset_arguments():
    from lit_gpt.sft.train import parse_arguments

    base = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", "o", "--preset", "upstream"]
    _, data_args, meap_args, _, _ = parse_arguments(base)
    assert (meap_args.meap_mode, meap_args.min_answer_tokens, data_args.template_name) == ("separate", 51, "llama3")
    _, data_args, meap_args, _, _ = parse_arguments(base[:-2])
    assert (meap_args.meap_mode, meap_args.min_answer_tokens, data_args.template_name) == ("concat", 50, "vicuna")
    with pytest.raises(UserError, match="--preset upstream makes its masked copies separate examples"):
        parse_arguments(base + ["--meap_mode", "concat"])
    with pytest.raises(UserError, match="--preset upstream: template 'vicuna' is not one of upstream's: llama3"):
        parse_arguments(base + ["--template_name", "vicuna"])
    with pytest.raises(UserError, match="--preset 'paper': choose one of default, upstream"):
        parse_arguments(base[:-1] + ["paper"])


def test_validation_split_holds_out_whole_records(tmp_path, tokenizer):
    from lit_gpt.sft.data import split_records

    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                               upstream=UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=4096))
    train, validation = split_records(tokenized, 40, seed=3)
    # records, rebuilt independently: a record's ntp rows then its copies, the next starts at turn 0
    rows = list(zip(tokenized["turn"], tokenized["masked_copy"]))
    starts = [i for i, (turn, copy) in enumerate(rows) if turn == 0 and not copy] + [len(rows)]
    groups = [set(range(a, b)) for a, b in zip(starts, starts[1:])]
    assert len(groups) == len(RECORDS)
    held = [g for g in groups if g & set(validation)]
    assert len(held) == 2  # 40 % of 5 records
    for group in groups:
        if group in held:
            assert not group & set(train) and set(validation) & group == {i for i in group if not rows[i][1]}
        else:
            assert group <= set(train)
