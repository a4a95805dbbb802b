"""Prompt templates rendered against hand-written strings; answer segments = what carries the loss."""

import pytest

from lit_gpt.errors import UserError
from lit_gpt.sft import TEMPLATES, Segment, get_template

EOS = "</s>"
ONE_TURN = [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]
TWO_TURNS = ONE_TURN + [{"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Red."}]
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
ALPACA = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
ALPACA_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
)

EXPECTED = {
    ("vicuna", 1): [
        Segment(f"{VICUNA_SYSTEM} USER: Name a color. ASSISTANT:", False),
        Segment(" Blue.", True),
    ],
    ("vicuna", 2): [
        Segment(f"{VICUNA_SYSTEM} USER: Name a color. ASSISTANT:", False),
        Segment(" Blue.</s>", True),
        Segment("USER: Another? ASSISTANT:", False),
        Segment(" Red.", True),
    ],
    ("alpaca", 1): [
        Segment(f"{ALPACA}\n\n### Instruction:\nName a color.\n\n### Response:\n", False),
        Segment("Blue.", True),
    ],
    ("alpaca", 2): [
        Segment(f"{ALPACA}\n\n### Instruction:\nName a color.\n\n### Response:\n", False),
        Segment("Blue.</s>", True),
        Segment("\n\n### Instruction:\nAnother?\n\n### Response:\n", False),
        Segment("Red.", True),
    ],
    ("llama3", 1): [
        Segment("<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        Segment("Blue.<|eot_id|>", True),
    ],
    ("llama3", 2): [
        Segment("<|start_header_id|>user<|end_header_id|>\n\nName a color.<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        Segment("Blue.<|eot_id|>", True),
        Segment("<|start_header_id|>user<|end_header_id|>\n\nAnother?<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        Segment("Red.<|eot_id|>", True),
    ],
    ("chatml", 1): [
        Segment("<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n", False),
        Segment("Blue.<|im_end|>", True),
    ],
    ("chatml", 2): [
        Segment("<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n", False),
        Segment("Blue.<|im_end|>", True),
        Segment("\n<|im_start|>user\nAnother?<|im_end|>\n<|im_start|>assistant\n", False),
        Segment("Red.<|im_end|>", True),
    ],
}


@pytest.mark.parametrize("name,turns", sorted(EXPECTED))
def test_templates_render(name, turns):
    messages = ONE_TURN if turns == 1 else TWO_TURNS
    assert get_template(name).render(messages, EOS) == EXPECTED[(name, turns)]


def test_every_template_is_covered():
    assert {name for name, _ in EXPECTED} == set(TEMPLATES)


def test_alpaca_with_and_without_input():
    alpaca = get_template("alpaca")
    with_input = [{"role": "user", "content": "Translate.", "input": "Hallo"}, {"role": "assistant", "content": "Hello"}]
    assert alpaca.render(with_input, EOS) == [
        Segment(f"{ALPACA_INPUT}\n\n### Instruction:\nTranslate.\n\n### Input:\nHallo\n\n### Response:\n", False),
        Segment("Hello", True),
    ]
    empty_input = [{"role": "user", "content": "Translate.", "input": ""}, {"role": "assistant", "content": "Hello"}]
    assert alpaca.render(empty_input, EOS)[0].text == f"{ALPACA}\n\n### Instruction:\nTranslate.\n\n### Response:\n"
    # templates without an input section put the input after the instruction
    assert get_template("chatml").render(with_input, EOS)[0].text == (
        "<|im_start|>user\nTranslate.\n\nHallo<|im_end|>\n<|im_start|>assistant\n"
    )


def test_system_prompts():
    messages = [{"role": "system", "content": "Be brief."}] + ONE_TURN
    assert get_template("vicuna").render(messages, EOS)[0].text == "Be brief. USER: Name a color. ASSISTANT:"
    assert get_template("llama3").render(messages, EOS)[0].text.startswith(
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
    )
    assert get_template("chatml").render(ONE_TURN, EOS, system="S")[0].text.startswith(
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"
    )
    assert get_template("vicuna").render(ONE_TURN, EOS, system="")[0].text == "USER: Name a color. ASSISTANT:"


def test_eos_placeholder_uses_the_tokenizers_eos():
    segments = get_template("vicuna").render(TWO_TURNS, "<|end_of_text|>")
    assert segments[1].text == " Blue.<|end_of_text|>"


def test_generation_prompt_when_the_last_message_is_from_the_user():
    segments = get_template("vicuna").render(ONE_TURN + [{"role": "user", "content": "Why?"}], EOS)
    assert segments[-1] == Segment("USER: Why? ASSISTANT:", False)


def test_roles_must_alternate():
    with pytest.raises(ValueError, match="expected 'user'"):
        get_template("vicuna").render([{"role": "assistant", "content": "x"}], EOS)


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown template 'vicunaa'; known templates: alpaca, chatml, llama3, vicuna"):
        get_template("vicunaa")
