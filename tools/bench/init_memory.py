"""Peak resident memory of each rank while FSDP2 sets up a model on CPU processes over gloo.

    python -m tools.bench.init_memory --processes 2 --mode meta   # as the trainer does
    python -m tools.bench.init_memory --processes 2 --mode full   # the whole model on every rank first

Prints one line per rank: peak RSS (MiB) before building, after setup, and the model's size.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
from functools import partial

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SHAPE = dict(n_layer=12, n_embd=1024, n_head=16, n_query_groups=4, intermediate_size=2816, vocab_size=32000)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _worker(rank: int, world: int, store: str, mode: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    from lit_gpt.config import Config
    from lit_gpt.model import GPT, count_parameters
    from lit_gpt.pretrain.parallel import init_weights, materialize, parallelize

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    config = Config.from_name("micro_LLaMA", **SHAPE)
    before = _peak_mib()
    torch.manual_seed(0)
    with torch.device("meta" if mode == "meta" else "cpu"):
        model = GPT(config, fused=False)
    parallelize(model, init_device_mesh("cpu", (world,)))
    materialize(model, torch.device("cpu"), partial(init_weights, config=config))
    dist.barrier()
    print(f"{mode} x{world} rank {rank}: {count_parameters(config) / 1e6:.0f}M parameters "
          f"({count_parameters(config) * 4 / 2**20:.0f} MiB fp32), peak RSS {before:.0f} MiB before, "
          f"{_peak_mib():.0f} MiB after setup", flush=True)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--mode", choices=("meta", "full"), default="meta")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(args.processes, os.path.join(tmp, "store"), args.mode), nprocs=args.processes)


if __name__ == "__main__":
    main()
