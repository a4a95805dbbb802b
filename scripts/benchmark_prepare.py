"""Throughput of data preparation: lit_gpt.prepare vs the upstream per-document approach.

    python scripts/benchmark_prepare.py [--megabytes 30] [--tokenizer_dir DIR] [--num_workers N]

Builds a C4-shaped input by replicating the embedded sample corpus to about `--megabytes` MB of
text, then tokenizes it twice in one run: (1) the reference written here, as the upstream
prepare script does it: one process, each document read, `tokenizer.encode`d, and appended to a
chunk builder on its own; (2) `lit_gpt.prepare.prepare`. Checks that both wrote the same tokens
and prints both throughputs and their ratio. By default it uses the realistic 32000-token
LLaMA-style sentencepiece tokenizer shipped in mistral-common, else the sample tokenizer.
"""

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lit_gpt.cli import UserError, exit_on_user_error
from lit_gpt.prepare import prepare
from lit_gpt.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def default_tokenizer(workdir: Path) -> tuple[Path, str]:
    try:
        import mistral_common

        model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
        if model.is_file():
            folder = workdir / "llama_tokenizer"
            folder.mkdir()
            shutil.copy(model, folder / "tokenizer.model")
            return folder, "32000-token LLaMA-style sentencepiece (mistral-common tokenizer.model.v1)"
    except ImportError:
        pass
    return REPO / "data" / "tokenizer", "4096-token sample BPE (data/tokenizer)"


def make_input(out_dir: Path, megabytes: float, files: int, seed: int = 0) -> int:
    """C4-shaped files holding the sample's training documents, shuffled and repeated."""
    records = []
    for path in sorted(SAMPLE.glob("c4-train.*.json.gz")):
        with gzip.open(path, "rt") as f:
            records += [json.loads(line) for line in f]
    rng = random.Random(seed)
    target = int(megabytes * 1e6 / files)
    out_dir.mkdir(parents=True)
    total = 0
    for i in range(files):
        lines, size = [], 0
        while size < target:
            record = rng.choice(records)
            line = json.dumps(record, ensure_ascii=False) + "\n"
            lines.append(line)
            size += len(line)
        (out_dir / f"c4-train.{i:05d}-of-{files:05d}.json.gz").write_bytes(
            gzip.compress("".join(lines).encode(), compresslevel=6)
        )
        total += size
    return total


def upstream_style(source_dir: Path, out_dir: Path, tokenizer_dir: Path, chunk_size: int) -> int:
    """The reference: one process, one document at a time, as the upstream prepare_c4.py does."""
    tokenizer = load_tokenizer(tokenizer_dir)
    eos = tokenizer.eos_token_id
    dtype = np.uint16 if len(tokenizer) < 65500 else np.int32
    out_dir.mkdir(parents=True)
    tokens = 0
    for path in sorted(source_dir.glob("*.json.gz")):
        buffer, filled, index = np.full(chunk_size, eos, dtype=dtype), 0, 0

        def write():
            nonlocal index
            (out_dir / f"{path.name}_{index:010d}.npy").write_bytes(buffer.tobytes())
            index += 1

        with gzip.open(path, "rb") as f:
            for line in f:
                text = json.loads(line)["text"]
                ids = np.array(tokenizer.encode(text, split_special_tokens=True) + [eos], dtype=dtype)
                tokens += ids.size
                # add_array as upstream's PackedDatasetBuilder does it
                start = 0
                while start < ids.size:
                    take = min(chunk_size - filled, ids.size - start)
                    buffer[filled : filled + take] = ids[start : start + take]
                    filled += take
                    start += take
                    if filled == chunk_size:
                        write()
                        buffer.fill(eos)
                        filled = 0
        if filled:
            write()
    return tokens


def streams(out_dir: Path, pattern: str, header: int) -> dict[str, np.ndarray]:
    groups: dict[str, list[Path]] = {}
    for path in sorted(out_dir.glob(pattern)):
        groups.setdefault(path.name.split(".json.gz")[0].removeprefix("c4_").rsplit("_", 1)[0], []).append(path)
    return {key: np.concatenate([np.fromfile(p, dtype=np.uint8)[header:] for p in paths]) for key, paths in groups.items()}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (prepare's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(run) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    tokens = run()
    return tokens, time.perf_counter() - wall, cpu_seconds() - cpu


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=30.0, help="uncompressed input size")
    parser.add_argument("--files", type=int, default=8, help="input files (prepare parallelises over files)")
    parser.add_argument("--tokenizer_dir", default=None, help="default: mistral-common's 32000-token model")
    parser.add_argument("--num_workers", type=int, default=None, help="for prepare (default: all cores)")
    parser.add_argument("--chunk_size", type=int, default=2049 * 1024)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    args = parser.parse_args(argv)
    if not SAMPLE.is_dir():
        raise UserError(f"the sample corpus is missing: {SAMPLE}")

    with tempfile.TemporaryDirectory(prefix="meap-bench-") as tmp:
        work = Path(tmp)
        if args.tokenizer_dir:
            tokenizer_dir, tokenizer_name = Path(args.tokenizer_dir), str(args.tokenizer_dir)
        else:
            tokenizer_dir, tokenizer_name = default_tokenizer(work)
        size = make_input(work / "src", args.megabytes, args.files)
        print(f"input: {args.files} .json.gz files, {size / 1e6:.1f} MB of JSON lines; tokenizer: {tokenizer_name}")
        print(f"cores: {os.cpu_count()}, prepare workers: {args.num_workers or os.cpu_count()}, "
              f"load average before: {os.getloadavg()[0]:.1f}")
        ref_runs, our_runs = [], []
        for repeat in range(args.repeats):
            ref_out, our_out = work / f"ref{repeat}", work / f"ours{repeat}"
            ref_runs.append(measure(lambda: upstream_style(work / "src", ref_out, tokenizer_dir, args.chunk_size)))
            our_runs.append(measure(lambda: prepare(
                work / "src", our_out, tokenizer_dir, chunk_size=args.chunk_size, num_workers=args.num_workers,
                progress=False, log=lambda line: None).tokens))
            ours, ref = streams(our_out, "c4_*.bin", 24), streams(ref_out, "*.npy", 0)
            if ours.keys() != ref.keys() or any(not np.array_equal(ours[k], ref[k]) for k in ref):
                raise SystemExit("outputs differ: the token streams of the two methods are not identical")
            shutil.rmtree(ref_out)
            shutil.rmtree(our_out)

    tokens = ref_runs[0][0]
    (_, ref_wall, ref_cpu), (_, our_wall, our_cpu) = min(ref_runs, key=lambda r: r[1]), min(our_runs, key=lambda r: r[1])
    print(f"tokens: {tokens:,} per run (identical streams from both); load average after: {os.getloadavg()[0]:.1f}")
    print(f"reference, per document, 1 process: {ref_wall:7.2f} s  {tokens / ref_wall:12,.0f} tokens/s"
          f"  ({tokens / ref_cpu:,.0f} tokens per CPU-second)")
    print(f"lit_gpt.prepare (batched, parallel): {our_wall:7.2f} s  {tokens / our_wall:12,.0f} tokens/s"
          f"  ({tokens / our_cpu:,.0f} tokens per CPU-second)")
    print(f"speed-up: {ref_wall / our_wall:.2f}x wall clock, {ref_cpu / our_cpu:.2f}x per CPU-second")


if __name__ == "__main__":
    main()
