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

from lit_gpt.sft.data import MEAPCollator, select_trainable, tokenize_files
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
    collator._seeded = (-1, None, rng)  # the main process's generators: upstream's masks from the reference's rng
    dataset = kept
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


def test_validation_split_holds_out_whole_records(tmp_path, tokenizer):
    from lit_gpt.sft.data import split_records

    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                               upstream=UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=4096))
    train, validation = split_records(tokenized, 40)
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


# ---- record shapes: upstream reads conversations its own way ---------------------------------------

def turn(role, value):
    return {"from": role, "value": value}


# shape: (record, upstream's number of ntp examples, as the issue lists them)
SHAPES = {
    "two leading gpt turns": ({"conversations": [turn("gpt", "Hi."), turn("gpt", "Hello."), turn("human", "Q?"),
                                                 turn("gpt", "A.")]}, 0),
    "ends with a human turn": ({"conversations": [turn("human", "Q?"), turn("gpt", "A."), turn("human", "More?")]}, 0),
    "an extra gpt turn at the end": ({"conversations": [turn("human", "Q?"), turn("gpt", "A."), turn("human", "Q2?"),
                                                        turn("gpt", LONG), turn("gpt", "Extra.")]}, 2),
    "a leading system turn": ({"conversations": [turn("system", "Be terse."), turn("human", "Q?"), turn("gpt", LONG)]}, 1),
    "a system field": ({"conversations": [turn("human", "Q?"), turn("gpt", "A.")], "system": "Be terse."}, 1),
    "a system_prompt field": ({"conversations": [turn("human", "Q?"), turn("gpt", LONG)], "system_prompt": "Be terse."}, 1),
    "user/assistant roles": ({"conversations": [turn("user", "Q?"), turn("assistant", "A."), turn("user", "Q2?"),
                                                turn("assistant", LONG)]}, 0),
    "an unknown speaker": ({"conversations": [turn("human", "Q?"), turn("gpt", "A."), turn("narrator", "Meanwhile."),
                                              turn("human", "Q2?"), turn("gpt", LONG)]}, 1),
    "an unknown speaker mid-turn": ({"conversations": [turn("human", "Q?"), turn("bot", "Hm."), turn("gpt", "A.")]}, 0),
    "a single turn": ({"conversations": [turn("human", "Q?")]}, 0),
    "whitespace answer": ({"conversations": [turn("human", "Q?"), turn("gpt", "   ")]}, 1),
}


def reference_examples(records, tokenizer, max_length, mask_ratio, rng):
    """Upstream's examples of `records` (all read as one batch, as its dataset.map does)."""
    batch = {"conversations": [as_sharegpt(r)["conversations"] for r in records],
             "system_prompt": [r.get("system_prompt") for r in records]}
    return upstream_preprocess(batch, tokenizer, LLAMA3, max_length, mask_ratio, rng)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_record_shape_matches_upstream(tmp_path, tokenizer, shape):
    record, n_ntp = SHAPES[shape]
    expected = reference_examples([record], tokenizer, 4096, 0.1, random.Random(5))
    mask_id = tokenizer.convert_tokens_to_ids("[MASK]")
    assert sum(mask_id not in e["input_ids"] for e in expected) == n_ntp  # the figure, from upstream's code
    if n_ntp == 0:  # nothing to train on: the run refuses a file of such records, the rows are unusable
        path = tmp_path / "data.jsonl"
        path.write_text(json.dumps(record) + "\n")
        tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                                   upstream=UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=4096))
        assert not any(tokenized["usable"])
        return
    ours, _ = our_examples(tmp_path, tokenizer, [record], 4096, 0.1, random.Random(5))
    assert ours == expected


def test_all_shapes_in_one_file_match_upstream(tmp_path, tokenizer):
    records = [SHAPES[s][0] for s in sorted(SHAPES)] + RECORDS
    expected = reference_examples(records, tokenizer, 100, 0.2, random.Random(11))
    ours, summary = our_examples(tmp_path, tokenizer, records, 100, 0.2, random.Random(11))
    assert ours == expected and summary.records == len(records)


def test_system_prompt_field_only(tmp_path, tokenizer):
    """A `system` field or turn leaves upstream's default system prompt; `system_prompt` replaces it."""
    for shape, default in (("a system field", True), ("a leading system turn", True), ("a system_prompt field", False)):
        folder = tmp_path / shape.replace(" ", "_")
        folder.mkdir()
        ours, _ = our_examples(folder, tokenizer, [SHAPES[shape][0]], 4096, 0.1,
                               random.Random(0), mode="ntp")
        text = tokenizer.decode(ours[0]["input_ids"])
        assert ("You are a helpful, excellent and smart assistant." in text) is default
        assert ("Be terse." in text) is not default


def test_the_first_percent_of_records_is_held_out(tmp_path, tokenizer):
    """upstream: `train[:1%]` is validation and `train[1%:]` the training set, by record order."""
    from lit_gpt.sft.data import split_records

    records = [{"instruction": f"Question {i}?", "input": "", "output": f"Answer {i}."} for i in range(250)]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                               upstream=UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=4096))
    train, validation = split_records(tokenized, 1)
    held = [tokenizer.decode(tokenized[i]["input_ids"]) for i in validation]
    # round(250 * 1 / 100) = 2 (datasets rounds percent boundaries to the closest record): records 0 and 1
    assert len(held) == 2 and "Question 0?" in held[0] and "Question 1?" in held[1]
    assert not any("Question 0?" in tokenizer.decode(tokenized[i]["input_ids"]) for i in train) and len(train) == 248
    import datasets

    ds = datasets.load_dataset("json", data_files=str(path), split="train[:1%]", cache_dir=str(tmp_path / "c2"))
    assert [r["instruction"] for r in ds] == ["Question 0?", "Question 1?"]  # what upstream's call holds out


# ---- LLaMA sentencepiece folders: upstream's slow tokenizer ---------------------------------------

def slow_llama_reference(model_file, legacy):
    """transformers 4's slow LlamaTokenizer, as upstream's use_fast=False loads it: the library's
    sentencepiece backend (splitting at added tokens, `_tokenize`) under LlamaTokenizer.tokenize,
    written here from that class (add_prefix_space True, add_bos_token True)."""
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    class SlowLlama(SentencePieceBackend):
        def tokenize(self, text, **kwargs):
            if self.legacy or len(text) == 0:
                return super().tokenize(text, **kwargs)
            text = "\u2581" + text.replace("\u2581", " ")
            tokens = super().tokenize(text, **kwargs)
            if len(tokens) > 1 and tokens[0] == "\u2581" and tokens[1] in self.all_special_tokens:
                tokens = tokens[1:]
            return tokens

        def encode(self, text, add_special_tokens=True):
            ids = self.convert_tokens_to_ids(self.tokenize(text))
            return [self.bos_token_id] + ids if add_special_tokens else ids

    tokenizer = SlowLlama(vocab_file=str(model_file), legacy=legacy, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["[MASK]"]})  # as upstream's SFT does
    return tokenizer


@pytest.fixture(scope="module", params=[False, True], ids=["legacy=False", "legacy=True"])
def llama_folder(request, llama_tokenizer_dir, tmp_path_factory):
    """A LLaMA-2-style Hugging Face folder (tokenizer.model + tokenizer_config.json) with `legacy` set."""
    import shutil

    folder = tmp_path_factory.mktemp("llama2")
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "legacy": request.param, "tokenizer_class": "LlamaTokenizer", "pad_token": None}))
    return folder, request.param


SLOW_TEXTS = ["   ", " ", "", "Paris", " Paris", "  two", "a  b", "x ", "<s>start", "x </s> y", "[MASK]z", "a[MASK] b",
              "\u2581x", "a\u2581\u2581b", "\n\nnew  lines\t", "Ünïcödé 日本語 🦙", "<unk>", " <s> ", "end</s>"]


def test_slow_llama_encoding_equals_the_slow_tokenizer(llama_folder):
    from lit_gpt.sft.upstream import SlowLlamaEncoding

    folder, legacy = llama_folder
    ours = SlowLlamaEncoding.for_folder(folder, load_tokenizer(folder))
    reference = slow_llama_reference(folder / "tokenizer.model", legacy)
    for text in SLOW_TEXTS + [LONG]:
        for special in (True, False):
            assert ours.encode(text, add_special_tokens=special) == reference.encode(text, add_special_tokens=special), text
    # the case: a whitespace-only answer is ▁▁▁▁ there, ▁▁▁ with the fast tokenizer
    pieces = lambda ids: reference.convert_ids_to_tokens(ids)
    assert pieces(ours.encode("   ", add_special_tokens=False)) == ["\u2581" * 4]
    assert pieces(load_tokenizer(folder).encode("   ", add_special_tokens=False)) == ["\u2581" * 3]


def test_whitespace_answer_with_a_llama_folder_matches_upstream(tmp_path, llama_folder):
    from lit_gpt.sft.upstream import SlowLlamaEncoding

    folder, legacy = llama_folder
    tokenizer = load_tokenizer(folder)
    records = [SHAPES["whitespace answer"][0], {"instruction": " Leading space.", "input": "", "output": " " + LONG}]
    expected = reference_examples(records, slow_llama_reference(folder / "tokenizer.model", legacy), 4096, 0.1,
                                  random.Random(2))
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = UpstreamSettings(UPSTREAM_TEMPLATES["llama3"], max_length=4096,
                                slow_llama=SlowLlamaEncoding.for_folder(folder, tokenizer))
    tokenized = tokenize_files([path], tokenizer, get_template("llama3"), cache_dir=str(tmp_path / "cache"),
                               upstream=settings)
    kept, _ = select_trainable(tokenized, max_length=4096, min_answer_tokens=settings.min_answer_tokens)
    collator = MEAPCollator(mode="separate", mask_ratio=0.1, mask_token_id=32000, eos_token_id=2, pad_token_id=2,
                            max_length=4096, preset="upstream")
    rng = random.Random(2)
    collator._seeded = (-1, None, rng)  # the main process's generators: upstream's masks from the reference's rng
    dataset = kept
    ours = []
    for index in range(len(dataset)):
        batch = collator([dataset[index]])
        ours.append({"input_ids": batch["input_ids"][0].tolist(), "labels": batch["labels"][0].tolist()})
    assert ours == expected and len(expected) == 3
