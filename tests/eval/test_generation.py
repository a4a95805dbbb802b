"""Answer log-probabilities: batched and left-padded against a token-by-token computation."""

import pytest
import torch

from lit_gpt.eval.prompts import build_prompts
from lit_gpt.tokenizer import load_tokenizer


def test_answer_logprob_equals_a_naive_token_by_token_computation(model_dir):
    """Batched, left-padded, one forward pass == each answer token scored alone by LlamaForCausalLM."""
    from transformers import LlamaForCausalLM

    from lit_gpt.eval.generation import answer_logprobs, prompt_answer_ids
    from lit_gpt.eval.models import prepare_tokenizer_for_batching

    tokenizer = load_tokenizer(model_dir, add_mask_token=False)
    prepare_tokenizer_for_batching(tokenizer)
    model = LlamaForCausalLM.from_pretrained(model_dir).eval()
    prompts = build_prompts(tokenizer, "passkey", [128, 160], [0.0, 1.0], 1, seed=3)
    answers = prompt_answer_ids(tokenizer, prompts)
    for p, a in zip(prompts, answers):
        assert tokenizer.decode(a).strip() == p.answer
    ids = [p.input_ids for p in prompts]
    batched = answer_logprobs(model, ids, answers, pad_id=tokenizer.pad_token_id, batch_size=4)
    alone = answer_logprobs(model, ids, answers, pad_id=tokenizer.pad_token_id, batch_size=1)
    assert len({len(p.input_ids) + len(a) for p, a in zip(prompts, answers)}) > 1  # the batch really pads
    for prompt, answer, got, got_alone in zip(ids, answers, batched, alone):
        total = 0.0
        with torch.no_grad():
            for j, token in enumerate(answer):
                context = torch.tensor([list(prompt) + list(answer[:j])])
                total += torch.log_softmax(model(context).logits[0, -1].double(), -1)[token].item()
        assert got == pytest.approx(total / len(answer), abs=1e-4)
        assert got_alone == pytest.approx(got, abs=1e-4)
