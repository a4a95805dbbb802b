"""Decoding (lit_gpt/generate.py): greedy against full forwards, sampling, stopping at EOS."""

import torch

from lit_gpt.generate import generate
from lit_gpt.model import GPT
from tests.model_helpers import tiny_config


def test_greedy_generate_equals_repeated_full_forwards():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    prompt = torch.randint(0, 97, (7,))
    out = generate(model, prompt, max_new_tokens=10)
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(10):
            nxt = model(seq.unsqueeze(0))[0, -1].argmax()
            seq = torch.cat([seq, nxt.view(1)])
    assert torch.equal(out, seq)


def test_sampling_is_reproducible_with_generator_and_respects_top_k():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    prompt = torch.randint(0, 97, (2, 5))
    a = generate(model, prompt, 8, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    b = generate(model, prompt, 8, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # top_k=1 sampling is greedy decoding.
    greedy = generate(model, prompt, 8)
    top1 = generate(model, prompt, 8, temperature=0.7, top_k=1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(greedy, top1)


def test_generate_stops_rows_at_eos():
    torch.manual_seed(0)
    model = GPT(tiny_config()).eval()
    prompt = torch.randint(0, 97, (1, 4))
    free = generate(model, prompt, 6)
    eos = int(free[0, 5])  # the second generated token becomes "EOS"
    out = generate(model, prompt, 6, eos_id=eos)
    assert out[0, 5] == eos and out.size(1) <= free.size(1)
    assert torch.equal(out[0, :6], free[0, :6])
