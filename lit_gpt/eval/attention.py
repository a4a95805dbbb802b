"""Where the model looks when it answers: attention shares on the needle, the question and the rest.

    python -m lit_gpt.eval.attention --model_dir DIR --task passkey|niah|kv \\
        --context_lengths 1024 --depths 0,0.25,0.5,0.75,1 --samples 4 --out_dir OUT

Each retrieval prompt (`lit_gpt.eval.prompts`) is followed by its answer (teacher-forced, one
forward pass). At the positions that predict the answer's tokens (the last prompt token and the
answer tokens before the last), the attention probabilities of every layer and head are computed
explicitly from the model's queries and keys, and summed over three regions of the visible keys:
the needle span, the question, and the rest (instruction, filler, earlier answer tokens); their
entropy is reported too. Shares are averaged over heads, answer positions and prompts, per layer.
The paper reports 34.5 % (MEAP) against 9.4 % (NTP) of the attention on the answer span.

A lit checkpoint (`.pth`) runs in the lit model with forward pre-hooks on each attention module
(the model itself keeps its fused SDPA path); a Hugging Face folder runs in its LLaMA-family model
with the same hooks on `self_attn`. Only the answer positions' rows are formed, so memory stays
O(layers x heads x answer tokens x context). Writes OUT/results.json and OUT/attention.png.
"""

from __future__ import annotations

import math
import statistics
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from lit_gpt.errors import UserError
from lit_gpt.eval import options
from lit_gpt.eval.options import setting
from lit_gpt.eval.prompts import RetrievalPrompt

OUTPUT_FILES = ("results.json", "attention.png")
REGIONS = ("needle", "question", "rest")
# Hugging Face model types whose attention is LLaMA's: q/k projections, then rotary embeddings.
HF_LLAMA_LIKE = ("llama", "mistral", "qwen2")


# ----------------------------------------------------------------------------- explicit attention
def attention_rows(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal softmax(q k^T * scale) at the query `positions` only, in fp32.

    q: (B, n_head, T, hs), k: (B, n_kv, T, hs) with n_head a multiple of n_kv (query head h reads
    key head h // (n_head / n_kv), as SDPA's enable_gqa and Hugging Face's repeat_kv do).
    -> (B, n_head, Q, T); row i puts zero weight on keys after positions[i].
    """
    k = k.repeat_interleave(q.size(1) // k.size(1), dim=1)
    scores = q[:, :, positions].float() @ k.float().transpose(-1, -2) * scale  # (B, nh, Q, T)
    future = torch.arange(k.size(2), device=q.device).unsqueeze(0) > positions.to(q.device).unsqueeze(1)  # (Q, T)
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def _hf_qk(module, hidden: torch.Tensor, position_embeddings) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and keys of a Hugging Face LLaMA-family attention module, as its forward forms them."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    shape = (*hidden.shape[:-1], -1, module.head_dim)
    q = module.q_proj(hidden).view(shape).transpose(1, 2)
    k = module.k_proj(hidden).view(shape).transpose(1, 2)
    cos, sin = position_embeddings
    return apply_rotary_pos_emb(q, k, cos, sin)


@contextmanager
def _capture(model, positions: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """Forward pre-hooks that append each layer's attention rows at `positions` to the yielded list."""
    from lit_gpt.kernels import apply_rope_reference
    from lit_gpt.model import GPT

    rows: list[torch.Tensor] = []
    if isinstance(model, GPT):
        scale = 1.0 / math.sqrt(model.config.head_size)

        def lit_hook(module, args):
            # Queries and keys of lit's CausalSelfAttention, as its forward forms them (plain RoPE).
            x, cos, sin = args[0], args[1], args[2]
            q, k, _ = module.split_qkv(x)
            q, k = apply_rope_reference(q, cos, sin), apply_rope_reference(k, cos, sin)
            rows.append(attention_rows(q, k, positions, scale))

        handles = [block.attn.register_forward_pre_hook(lit_hook) for block in model.transformer.h]
    else:
        model_type = getattr(model.config, "model_type", None)
        if model_type not in HF_LLAMA_LIKE:
            raise UserError(
                f"attention analysis supports Hugging Face models of type {', '.join(HF_LLAMA_LIKE)}, not {model_type!r}"
            )

        def hf_hook(module, args, kwargs):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            q, k = _hf_qk(module, hidden, kwargs["position_embeddings"])
            rows.append(attention_rows(q, k, positions, module.scaling))

        layers = model.model.layers
        handles = [layer.self_attn.register_forward_pre_hook(hf_hook, with_kwargs=True) for layer in layers]
    try:
        yield rows
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def answer_attention(model, input_ids: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
    """Attention probabilities of every layer at `positions` of one unpadded sequence.

    -> (n_layer, n_head, len(positions), len(input_ids)), fp32, on the CPU.
    """
    device = next(model.parameters()).device
    ids = torch.as_tensor([list(input_ids)], dtype=torch.long, device=device)
    where = torch.as_tensor(list(positions), dtype=torch.long, device=device)
    with _capture(model, where) as rows:
        model(ids)
    return torch.cat(rows, dim=0).cpu()


# ----------------------------------------------------------------------------- shares
@dataclass(frozen=True)
class Regions:
    """Token index ranges [start, end) of one teacher-forced prompt + answer."""

    needle: tuple[int, int]
    question: tuple[int, int]


def region_shares(probs: torch.Tensor, regions: Regions) -> dict[str, torch.Tensor]:
    """probs (L, nh, Q, T) -> per layer and query position, averaged over heads: the attention share
    on the needle, on the question and on the rest (the three sum to 1), and the entropy (nats)."""
    def share(span: tuple[int, int]) -> torch.Tensor:
        return probs[..., span[0] : span[1]].sum(-1).mean(1)  # (L, Q)

    needle, question = share(regions.needle), share(regions.question)
    entropy = -(probs * torch.log(probs.clamp_min(1e-30))).sum(-1).mean(1)
    return {"needle": needle, "question": question, "rest": 1.0 - needle - question, "entropy": entropy}


def uniform_needle_share(regions: Regions, positions: Sequence[int]) -> list[float]:
    """The needle's share if attention were uniform over the visible keys: needle tokens / (p + 1)."""
    start, end = regions.needle
    return [max(0, min(end, p + 1) - start) / (p + 1) for p in positions]


def analyse_prompt(model, prompt: RetrievalPrompt, answer_ids: Sequence[int]) -> dict[str, Any]:
    """One record: per layer, the shares and entropy averaged over the answer's predicting positions."""
    ids = list(prompt.input_ids) + list(answer_ids)
    n_prompt = len(prompt.input_ids)
    positions = list(range(n_prompt - 1, n_prompt - 1 + len(answer_ids)))
    regions = Regions(needle=(prompt.needle_start, prompt.needle_end), question=(prompt.context_end, n_prompt))
    shares = region_shares(answer_attention(model, ids, positions), regions)
    return {
        "context_length": prompt.context_length,
        "depth": prompt.depth,
        "sample": prompt.sample_index,
        "prompt_tokens": n_prompt,
        "needle_span": list(regions.needle),
        "question_span": list(regions.question),
        "answer_positions": positions,
        "uniform_needle_share": statistics.fmean(uniform_needle_share(regions, positions)),
        **{name: [round(float(v), 6) for v in values.mean(-1)] for name, values in shares.items()},
    }


def summarize(records: Sequence[dict]) -> dict[str, Any]:
    """Per layer, the mean over prompts of each share and of the entropy; plus the layer means."""
    per_layer = {
        name: [statistics.fmean(layer) for layer in zip(*(r[name] for r in records))] for name in (*REGIONS, "entropy")
    }
    return {
        "per_layer": per_layer,
        "mean_over_layers": {name: statistics.fmean(values) for name, values in per_layer.items()},
        "uniform_needle_share": statistics.fmean(r["uniform_needle_share"] for r in records),
        "n": len(records),
    }


# ----------------------------------------------------------------------------- figure
def plot_attention(summary: dict, path, title: str = "") -> Path:
    """Left: per layer, the stacked shares (needle, question, rest) with the uniform needle share
    marked; right: the attention entropy per layer."""
    from lit_gpt.eval.plots import new_figure, save_figure

    per_layer = summary["per_layer"]
    layers = list(range(len(per_layer["needle"])))
    fig, (ax_share, ax_entropy) = new_figure(11.0, 4.2, ncols=2)
    bottom = [0.0] * len(layers)
    for name, color in zip(REGIONS, ("#0CD79F", "#EBB839", "#B0B0B0")):
        values = [100 * v for v in per_layer[name]]
        ax_share.bar(layers, values, bottom=bottom, color=color, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    ax_share.axhline(100 * summary["uniform_needle_share"], color="black", linestyle="--", linewidth=1,
                     label="needle, if uniform")
    ax_share.set_xlabel("layer")
    ax_share.set_ylabel("attention share at the answer positions (%)")
    ax_share.set_ylim(0, 100)
    ax_share.set_xticks(layers)
    ax_share.legend(fontsize=8)
    ax_share.set_title(title or "attention share")
    ax_entropy.plot(layers, per_layer["entropy"], marker="o")
    ax_entropy.set_xlabel("layer")
    ax_entropy.set_ylabel("entropy (nats)")
    ax_entropy.set_xticks(layers)
    ax_entropy.grid(alpha=0.3)
    ax_entropy.set_title("attention entropy, mean over heads")
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- loading and the CLI
@dataclass(kw_only=True)
class AttentionSettings(options.PromptGridSettings):
    dtype: str = setting("float32", choices=options.DTYPES)
    context_lengths: list[int] = setting([1024], type=options.comma_list(options.token_count))
    samples: int = setting(4, type=options.positive_int, help="prompts per length and depth")
    out_dir: str = setting("out/attention", cli_required=True)


def load_for_attention(settings: AttentionSettings):
    """(model, tokenizer, source): a lit checkpoint as the lit GPT, a Hugging Face folder as its model."""
    from lit_gpt.eval.models import check_model_path, prepare_tokenizer_for_batching, resolve_device, resolve_dtype

    path = check_model_path(settings.model_dir, settings.tokenizer_dir)
    if path.is_dir():
        loaded = settings.load_model()
        return loaded.model, loaded.tokenizer, "hf"
    from lit_gpt.convert.checkpoint import load_lit_checkpoint
    from lit_gpt.convert.export import load_matching_tokenizer, resolve_tokenizer_dir
    from lit_gpt.model import GPT

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    sd, config, meta = load_lit_checkpoint(path)
    tok_dir = resolve_tokenizer_dir(settings.tokenizer_dir, meta)
    if tok_dir is None:
        raise UserError(f"{path} records no tokenizer: pass --tokenizer_dir")
    tokenizer = load_matching_tokenizer(tok_dir, config)
    prepare_tokenizer_for_batching(tokenizer)
    with torch.device("meta"):
        model = GPT(config, fused=False)
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, assign=True)
    return model.to(device).eval(), tokenizer, "lit"


def run_attention(settings: AttentionSettings, command: Optional[str] = None) -> dict:
    """Builds the prompts, measures the attention, writes results.json and attention.png; returns the results."""
    from tqdm.auto import tqdm

    from lit_gpt.eval.prompts import build_prompts
    from lit_gpt.eval.haystack import task_haystack
    from lit_gpt.eval.generation import prompt_answer_ids
    from lit_gpt.eval.models import max_positions

    options.check_out_dir(settings.out_dir, OUTPUT_FILES, settings.overwrite)
    model, tokenizer, source = load_for_attention(settings)
    positions = max_positions(model.config)
    # Refused at once when a context alone is too long, and below, once the answers are known, when a
    # prompt and its answer are: the model reads both (teacher-forced).
    allow = settings.allow_beyond_context
    options.check_positions(max(settings.context_lengths), positions, allow, "--context_lengths")
    corpus, haystack = task_haystack(settings.task, settings.context_lengths, settings.haystack_file)
    prompts = build_prompts(tokenizer, settings.task, settings.context_lengths, settings.depths, settings.samples,
                            settings.seed, corpus)
    answers = prompt_answer_ids(tokenizer, prompts)
    longest = max(len(prompt.input_ids) + len(answer) for prompt, answer in zip(prompts, answers))
    options.check_positions(longest, positions, allow, "--context_lengths (prompt and answer)")
    out_dir = options.prepare_out_dir(settings.out_dir, OUTPUT_FILES, settings.overwrite)
    pairs = tqdm(list(zip(prompts, answers)), desc=f"{settings.task} attention", unit="prompt",
                 disable=not sys.stderr.isatty())
    records = [analyse_prompt(model, prompt, answer) for prompt, answer in pairs]
    summary = summarize(records)
    results = {
        "task": settings.task,
        "model": str(Path(settings.model_dir).expanduser().resolve()),
        "settings": {**asdict(settings), "model_source": source, "haystack": haystack, "command": command},
        "definition": (
            "attention probabilities at the positions predicting the answer tokens (teacher-forced), summed over "
            "the needle span, the question (end of context to end of prompt) and the rest of the visible keys, "
            "averaged over heads, answer positions and prompts"
        ),
        "summary": summary,
        "records": records,
    }
    options.write_json(out_dir / "results.json", results)
    plot_attention(summary, out_dir / "attention.png", title=f"{settings.task}: {Path(settings.model_dir).name}")
    return results


def format_summary(summary: dict) -> str:
    per_layer = summary["per_layer"]
    lines = [f"{'layer':>5} | {'needle':>7} {'question':>8} {'rest':>7} | {'entropy':>7}"]
    for layer in range(len(per_layer["needle"])):
        lines.append(f"{layer:>5} | {100 * per_layer['needle'][layer]:>6.1f}% {100 * per_layer['question'][layer]:>7.1f}% "
                     f"{100 * per_layer['rest'][layer]:>6.1f}% | {per_layer['entropy'][layer]:>7.3f}")
    m = summary["mean_over_layers"]
    lines.append(f"{'mean':>5} | {100 * m['needle']:>6.1f}% {100 * m['question']:>7.1f}% {100 * m['rest']:>6.1f}% | "
                 f"{m['entropy']:>7.3f}   (needle share if uniform: {100 * summary['uniform_needle_share']:.1f}%)")
    return "\n".join(lines)


def report(settings: AttentionSettings, results: dict) -> None:
    print(f"{settings.task}: attention at the answer positions of {settings.model_dir}, "
          f"mean over heads and {results['summary']['n']} prompts")
    print(format_summary(results["summary"]))
    print(f"wrote {Path(settings.out_dir) / 'results.json'} and {Path(settings.out_dir) / 'attention.png'}")


# No --batch_size: the prompts run one at a time.
main = options.command(AttentionSettings, run_attention, report, "lit_gpt.eval.attention", __doc__)

if __name__ == "__main__":
    main()
