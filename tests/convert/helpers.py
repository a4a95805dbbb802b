"""Models and inputs shared by the tests of lit_gpt/convert."""

import torch

from lit_gpt.config import Config
from lit_gpt.model import GPT

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Weights large enough that every mapping mistake shows in the logits; norms away from 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1 + 0.2 * noise if p.dim() == 1 else 0.2 * noise)


def random_lit_model(config: Config, seed: int = 0) -> GPT:
    model = GPT(config, fused=False)
    randomize_(model, seed)
    return model.eval()


def tokens(seed: int, vocab: int = 99, shape=(2, 17)) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))
