"""Prompt templates as data, and rendering a conversation into prompt/answer text segments.

The answer segments (every assistant turn, with its end marker) carry the loss and everything else
is context, so multi-turn conversations keep their history and every assistant turn is learned.
The final EOS is not rendered: the MEAP builder appends it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional, Sequence

from lit_gpt.errors import UserError

EOS_PLACEHOLDER = "{eos}"  # stands for the tokenizer's EOS token in `assistant_end`


@dataclass(frozen=True)
class Segment:
    text: str
    is_answer: bool


@dataclass(frozen=True)
class Template:
    name: str
    user: str  # one user turn up to the assistant's first character; "{content}"
    assistant: str = "{content}"
    # Closes every assistant turn and is learned, so the model learns to stop. "{eos}" is the
    # tokenizer's EOS; it is left off the last turn, which the builder closes with EOS anyway.
    assistant_end: str = ""
    turn_separator: str = ""  # context between an assistant turn and the next user turn
    system: str = "{system}"  # how a system message is written; omitted when it is empty
    default_system: str = ""
    # Alpaca words the system line and the user turn differently when a record has an input;
    # templates without these append the input to the instruction after a blank line.
    user_with_input: Optional[str] = None
    default_system_with_input: Optional[str] = None
    # Markers the template writes that should be single special tokens of the tokenizer.
    special_tokens: tuple = ()

    def render(self, messages: Sequence[dict], eos_token: str, system: Optional[str] = None) -> list[Segment]:
        """Prompt and answer segments of `messages` ({"role", "content"}; a user message may carry
        Alpaca's "input"), merged where neighbours are both prompt or both answer.

        A leading system message, else `system`, else the template's default is the system
        prompt. Messages must alternate user, assistant, user, ... after it; ending on a user
        message gives a generation prompt (the text a model continues at inference).
        """
        messages = list(messages)
        if messages and messages[0]["role"] == "system":
            system = messages.pop(0)["content"]
        if system is None:
            with_input = messages and messages[0].get("input") and self.default_system_with_input is not None
            system = self.default_system_with_input if with_input else self.default_system

        texts = [(self.system.format(system=system), False)] if system else []
        for i, message in enumerate(messages):
            expected = "user" if i % 2 == 0 else "assistant"
            if message["role"] != expected:
                raise ValueError(f"message {i} has role {message['role']!r}, expected {expected!r}")
            if expected == "user":
                content, extra = message["content"], message.get("input") or ""
                if extra and self.user_with_input is not None:
                    text = self.user_with_input.format(content=content, input=extra)
                else:
                    text = self.user.format(content=f"{content}\n\n{extra}" if extra else content)
                texts.append(((self.turn_separator if i > 0 else "") + text, False))
            else:
                end = "" if i == len(messages) - 1 and self.assistant_end == EOS_PLACEHOLDER else self.assistant_end
                end = end.replace(EOS_PLACEHOLDER, eos_token)
                texts.append((self.assistant.format(content=message["content"]) + end, True))
        return [
            Segment("".join(text for text, _ in group), is_answer)
            for is_answer, group in itertools.groupby(texts, key=lambda t: t[1])
        ]


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        # FastChat's vicuna_v1.1: "SYSTEM USER: q ASSISTANT: a</s>USER: q2 ASSISTANT: a2</s>"
        Template(
            name="vicuna",
            default_system=(
                "A chat between a curious user and an artificial intelligence assistant. "
                "The assistant gives helpful, detailed, and polite answers to the user's questions."
            ),
            system="{system} ",
            user="USER: {content} ASSISTANT:",
            assistant=" {content}",
            assistant_end=EOS_PLACEHOLDER,
        ),
        # Stanford Alpaca's prompt, with and without the input field.
        Template(
            name="alpaca",
            default_system=(
                "Below is an instruction that describes a task. "
                "Write a response that appropriately completes the request."
            ),
            default_system_with_input=(
                "Below is an instruction that describes a task, paired with an input that provides "
                "further context. Write a response that appropriately completes the request."
            ),
            system="{system}\n\n",
            user="### Instruction:\n{content}\n\n### Response:\n",
            user_with_input="### Instruction:\n{content}\n\n### Input:\n{input}\n\n### Response:\n",
            assistant_end=EOS_PLACEHOLDER,
            turn_separator="\n\n",
        ),
        # Meta Llama 3 chat format; <|begin_of_text|> is the tokenizer's BOS.
        Template(
            name="llama3",
            system="<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
            user=(
                "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
            assistant_end="<|eot_id|>",
            special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        ),
        # ChatML (Qwen, OpenHermes, ...).
        Template(
            name="chatml",
            system="<|im_start|>system\n{system}<|im_end|>\n",
            user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
            assistant_end="<|im_end|>",
            turn_separator="\n",
            special_tokens=("<|im_start|>", "<|im_end|>"),
        ),
    )
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UserError(f"unknown template {name!r}; known templates: {', '.join(sorted(TEMPLATES))}") from None
