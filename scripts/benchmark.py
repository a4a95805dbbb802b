"""Training-step throughput: kernel sets x (MEAP, NTP), against Hugging Face (+ Liger).

    python scripts/benchmark.py --model_name tiny_LLaMA_1b --micro_batch_size 8 --seq_len 2048 \
        --steps 10 --json out/bench_1b.json [--variants eager fused compile hf hf_liger] \
        [--precision bf16-mixed|bf16-true|32-true]

Every variant is built and warmed up, then timed in rounds (one step of each variant and mask
ratio per round), so the order of --variants does not matter; all variants stay on the device
together. --micro_batch_size auto searches the largest micro batch that fits (CUDA). Prints a
table (median step time with min/max, tokens/s, TFLOP/s, fraction of the bf16 matmul rate where
that is the run's ceiling, peak memory, host syncs per step, paired MEAP/NTP and HF ratios) and
writes every number, the card, versions, date and this command to --json.
See docs/PERFORMANCE.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path


# tools/ lives in the repository, beside this script, not in the installed lit_gpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_gpt.cli import exit_on_user_error
from lit_gpt.errors import UserError


def parse_args(argv=None) -> argparse.Namespace:
    from tools.bench.run import PRECISIONS, VARIANTS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name", required=True, help="shape from lit_gpt/config.py, e.g. tiny_LLaMA_1b")
    parser.add_argument("--micro_batch_size", required=True, help="sequences per step, or 'auto' (largest that fits, CUDA)")
    parser.add_argument("--seq_len", type=int, required=True, help="tokens per sequence T")
    parser.add_argument("--steps", type=int, default=10, help="timed rounds (one step of every variant and mask ratio each)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps of each variant first (compilation happens here)")
    parser.add_argument("--grad_accum", type=int, default=1, help="micro batches per optimizer step")
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="configurations (timed in rounds: their order does not matter)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="default: bf16-mixed on CUDA, 32-true on CPU")
    parser.add_argument("--mask_ratio", type=float, default=0.15, help="MEAP mask ratio compared with 0 (NTP)")
    parser.add_argument("--compile_backend", default="inductor", help="torch.compile backend of the compile variant")
    parser.add_argument("--compile_mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--matmul_size", type=int, default=None, help="n of the n^3 bf16 matmul; default 8192 on CUDA, 256 on CPU")
    parser.add_argument("--device", default=None, help="cuda or cpu; default cuda when available")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> int:
    args = parse_args(argv)
    from tools.bench.report import format_table
    from tools.bench.run import BenchSettings, run_benchmark
    from lit_gpt.config import name_to_config

    out = Path(args.json)
    if out.exists() and not args.overwrite:
        raise UserError(f"--json {out} exists (add --overwrite to replace it)")
    if args.model_name not in name_to_config:
        raise UserError(f"--model_name {args.model_name!r}: unknown; known: {', '.join(sorted(name_to_config))}")
    if args.micro_batch_size == "auto":
        micro_batch_size = None
    elif args.micro_batch_size.isdigit() and int(args.micro_batch_size) > 0:
        micro_batch_size = int(args.micro_batch_size)
    else:
        raise UserError(f"--micro_batch_size {args.micro_batch_size!r}: a positive integer or 'auto'")
    for name in ("seq_len", "steps", "grad_accum"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} {getattr(args, name)}: must be >= 1")
    repeated = sorted({v for v in args.variants if args.variants.count(v) > 1})
    if repeated:
        raise UserError(f"--variants: {', '.join(repeated)} given more than once (every variant runs in every round)")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup}: must be >= 0")
    if not 0 < args.mask_ratio < 1:
        raise UserError(f"--mask_ratio {args.mask_ratio}: must be in (0, 1)")
    if args.device is not None:
        from lit_gpt.eval.models import resolve_device

        resolve_device(args.device)  # one line for a device that does not exist or this machine lacks
    if micro_batch_size is None:
        import torch

        if args.device == "cpu" or not torch.cuda.is_available():
            raise UserError("--micro_batch_size auto needs CUDA; give a number on CPU")

    settings = BenchSettings(
        model_name=args.model_name, micro_batch_size=micro_batch_size, seq_len=args.seq_len, steps=args.steps,
        warmup=args.warmup, grad_accum=args.grad_accum, precision=args.precision, variants=tuple(args.variants),
        mask_ratio=args.mask_ratio, compile_backend=args.compile_backend, compile_mode=args.compile_mode,
        matmul_size=args.matmul_size, device=args.device,
    )
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(report: dict) -> None:
        # Rewritten after every configuration ("complete": false until the end), atomically, so
        # a run that is cut short keeps what it measured and a reader never sees half a file.
        partial = out.with_name(out.name + ".partial")
        partial.write_text(json.dumps(report, indent=2) + "\n")
        partial.replace(out)

    command = shlex.join([os.path.basename(sys.executable), *sys.argv])
    progress = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report = run_benchmark(settings, command=command, progress=progress, on_update=write)
    write(report)
    print(format_table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
