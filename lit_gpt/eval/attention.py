"""Where the model looks when it answers: attention shares on the needle, the question and the rest.

    python -m lit_gpt.eval.attention --model_dir DIR --task passkey|niah|kv \\
        --context_lengths 1024 --depths 0,0.25,0.5,0.75,1 --samples 4 --out_dir OUT

Each prompt is followed by its answer (teacher-forced, one forward pass); the method and the
outputs (OUT/results.json, OUT/attention.png) are described in docs/EVALUATION.md. Forward pre-hooks
on each LLaMA-family `self_attn` (or each attention module of a lit `GPT`) recompute the queries and
keys, so the model keeps its fused SDPA path; only the answer positions' rows are formed, so memory
stays O(layers x heads x answer tokens x context).
"""

from __future__ import annotations

import math
import statistics
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import torch

from lit_gpt.errors import UserError
from lit_gpt.eval import options
from lit_gpt.eval.options import setting
from lit_gpt.eval.prompts import RetrievalPrompt

OUTPUT_FILES = ("results.json", "attention.png")
REGIONS = ("needle", "question", "rest")
# Hugging Face model types whose attention is LLaMA's.
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


@contextmanager
def _capture(model, positions: torch.Tensor) -> Iterator[list[torch.Tensor]]:
    """Forward pre-hooks that append each layer's attention rows at `positions` to the yielded list."""
    from lit_gpt.kernels import apply_rope_reference
    from lit_gpt.model import GPT

    if isinstance(model, GPT):
        modules = [block.attn for block in model.transformer.h]
        scale = 1.0 / math.sqrt(model.config.head_size)

        def queries_keys(module, args, kwargs):
            # As lit's CausalSelfAttention forms them (plain RoPE).
            x, cos, sin = args[:3]
            q, k, _ = module.split_qkv(x)
            return apply_rope_reference(q, cos, sin), apply_rope_reference(k, cos, sin)

    else:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        model_type = getattr(model.config, "model_type", None)
        if model_type not in HF_LLAMA_LIKE:
            raise UserError(
                f"attention analysis supports Hugging Face models of type {', '.join(HF_LLAMA_LIKE)}, not {model_type!r}"
            )
        modules = [layer.self_attn for layer in model.model.layers]
        scale = None

        def queries_keys(module, args, kwargs):
            # As LLaMA's attention forms them: q/k projections, then rotary embeddings.
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            shape = (*hidden.shape[:-1], -1, module.head_dim)
            q = module.q_proj(hidden).view(shape).transpose(1, 2)
            k = module.k_proj(hidden).view(shape).transpose(1, 2)
            return apply_rotary_pos_emb(q, k, *kwargs["position_embeddings"])

    rows: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        q, k = queries_keys(module, args, kwargs)
        rows.append(attention_rows(q, k, positions, scale or module.scaling))

    handles = [module.register_forward_pre_hook(hook, with_kwargs=True) for module in modules]
    try:
        yield rows
    finally:
        for handle in handles:
            handle.remove()


@torch.inference_mode()
def answer_attention(model, input_ids: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
    """Attention probabilities (n_layer, n_head, len(positions), len(input_ids)), fp32 on the CPU, of one sequence."""
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
    """Per layer: the stacked shares with the uniform needle share marked (left), the entropy (right)."""
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


def run_attention(settings: AttentionSettings, command: Optional[str] = None) -> dict:
    """Builds the prompts, measures the attention, writes results.json and attention.png; returns the results."""
    from tqdm.auto import tqdm

    from lit_gpt.eval.generation import prompt_answer_ids

    loaded = settings.load_model(OUTPUT_FILES)
    # Refused at once when a context alone is too long, and below, once the answers are known, when a
    # prompt and its answer are: the model reads both (teacher-forced).
    settings.check_positions(max(settings.context_lengths), loaded, "--context_lengths")
    prompts, haystack = settings.prompts(loaded.tokenizer)
    answers = prompt_answer_ids(loaded.tokenizer, prompts)
    longest = max(len(prompt.input_ids) + len(answer) for prompt, answer in zip(prompts, answers))
    settings.check_positions(longest, loaded, "--context_lengths (prompt and answer)")
    out_dir = settings.make_out_dir()
    pairs = tqdm(list(zip(prompts, answers)), desc=f"{settings.task} attention", unit="prompt",
                 disable=not sys.stderr.isatty())
    records = [analyse_prompt(loaded.model, prompt, answer) for prompt, answer in pairs]
    summary = summarize(records)
    results = {
        **settings.results_head(settings.task, loaded, haystack=haystack, command=command),
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


def report(settings: AttentionSettings, results: dict) -> None:
    summary = results["summary"]
    per_layer = summary["per_layer"]
    layers = range(len(per_layer["needle"]))
    rows = [(layer, {name: values[layer] for name, values in per_layer.items()}) for layer in layers]
    rows.append(("mean", summary["mean_over_layers"]))
    lines = [f"{'layer':>5} | {'needle':>7} {'question':>8} {'rest':>7} | {'entropy':>7}"]
    for label, r in rows:
        lines.append(f"{label:>5} | {100 * r['needle']:>6.1f}% {100 * r['question']:>7.1f}% {100 * r['rest']:>6.1f}% | "
                     f"{r['entropy']:>7.3f}")
    lines[-1] += f"   (needle share if uniform: {100 * summary['uniform_needle_share']:.1f}%)"
    print(f"{settings.task}: attention at the answer positions of {settings.model_dir}, "
          f"mean over heads and {summary['n']} prompts")
    print("\n".join(lines))
    print(f"wrote {Path(settings.out_dir) / 'results.json'} and {Path(settings.out_dir) / 'attention.png'}")


# No --batch_size: the prompts run one at a time.
main = options.command(AttentionSettings, run_attention, report, "lit_gpt.eval.attention", __doc__)

if __name__ == "__main__":
    main()
