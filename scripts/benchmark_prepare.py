"""Throughput of data preparation: lit_gpt.prepare vs the upstream per-document approach.

    python scripts/benchmark_prepare.py [--megabytes 30] [--tokenizer_dir DIR] [--num_workers N]
    python scripts/benchmark_prepare.py --source_path /data/c4/en --files 2     # on real C4 shards

Builds a C4-shaped input by replicating the embedded sample corpus to about `--megabytes` MB of
text (or takes the first `--files` .json.gz files of `--source_path`), then tokenizes it twice in
one run: (1) the reference written here, as the upstream prepare script does it: one process,
each document read, `tokenizer.encode`d, and appended to a chunk builder on its own; (2)
`lit_gpt.prepare.prepare`. Checks that both wrote the same tokens and prints both throughputs,
their ratio, and how much CPU other processes took meanwhile (other work skews both). By
default it uses the realistic 32000-token LLaMA-style sentencepiece tokenizer shipped in
mistral-common, else the sample tokenizer.

The generated input repeats a small synthetic corpus, whose few distinct words suit prepare's word
cache better than real text does: measure on real shards with `--source_path` before quoting.
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
from typing import NamedTuple, Optional

import numpy as np

from lit_gpt.cli import UserError, exit_on_user_error
from lit_gpt.packed import token_dtype
from lit_gpt.prepare import prepare
from lit_gpt.token_encoding import BatchEncoder
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


def link_input(out_dir: Path, source_path: Path, files: int) -> int:
    """The first `files` training .json.gz files of `source_path`, linked into `out_dir`; their size unzipped."""
    paths = [p for p in sorted(source_path.expanduser().glob("*.json.gz")) if not p.name.startswith("c4-validation")]
    paths = paths[:files]
    if not paths:
        raise UserError(f"no training .json.gz files in {source_path}")
    out_dir.mkdir(parents=True)
    total = 0
    for path in paths:
        (out_dir / path.name).symlink_to(path.resolve())
        with gzip.open(path, "rb") as f:
            total += sum(len(chunk) for chunk in iter(lambda: f.read(1 << 24), b""))
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


def busy_seconds() -> Optional[float]:
    """CPU time all processes on the machine have used since boot (Linux /proc/stat), else None."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


class Run(NamedTuple):
    tokens: int
    wall: float  # seconds
    cpu: float  # CPU-seconds of this run (its processes)
    others: Optional[float]  # CPU-seconds that other processes on the machine used meanwhile

    def note(self) -> str:
        if self.others is None:
            return f"{self.wall:.2f} s"
        return f"{self.wall:.2f} s, other processes meanwhile {max(self.others, 0) / self.wall:.2f} cores"


def measure(run) -> Run:
    busy, wall, cpu = busy_seconds(), time.perf_counter(), cpu_seconds()
    tokens = run()
    wall, cpu, busy_after = time.perf_counter() - wall, cpu_seconds() - cpu, busy_seconds()
    return Run(tokens, wall, cpu, None if busy is None or busy_after is None else busy_after - busy - cpu)


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=30.0, help="uncompressed input size")
    parser.add_argument("--files", type=int, default=8, help="input files (prepare parallelises over files)")
    parser.add_argument("--source_path", default=None,
                        help="benchmark on the first --files C4 .json.gz files here instead of generated ones")
    parser.add_argument("--tokenizer_dir", default=None, help="default: mistral-common's 32000-token model")
    parser.add_argument("--num_workers", type=int, default=None, help="for prepare (default: all cores)")
    parser.add_argument("--chunk_size", type=int, default=2049 * 1024)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    args = parser.parse_args(argv)
    if args.source_path is None and not SAMPLE.is_dir():
        raise UserError(f"the sample corpus is missing: {SAMPLE}")

    with tempfile.TemporaryDirectory(prefix="meap-bench-") as tmp:
        work = Path(tmp)
        if args.tokenizer_dir:
            tokenizer_dir, tokenizer_name = Path(args.tokenizer_dir), str(args.tokenizer_dir)
        else:
            tokenizer_dir, tokenizer_name = default_tokenizer(work)
        if args.source_path:
            size = link_input(work / "src", Path(args.source_path), args.files)
        else:
            size = make_input(work / "src", args.megabytes, args.files)
        files = len(list((work / "src").glob("*.json.gz")))
        print(f"input: {files} .json.gz files, {size / 1e6:.1f} MB of JSON lines; tokenizer: {tokenizer_name}")
        # Loading once first keeps the one-off import of transformers out of both timings.
        tokenizer = load_tokenizer(tokenizer_dir)
        encoder = BatchEncoder(tokenizer, token_dtype(len(tokenizer)))
        why = f" ({encoder.why_not_word_cache})" if encoder.why_not_word_cache else ""
        print(f"cores: {os.cpu_count()}, prepare workers: {args.num_workers or os.cpu_count()}, "
              f"prepare encodes by: {encoder.method}{why}; load average before: {os.getloadavg()[0]:.2f}")
        ref_runs, our_runs = [], []
        for repeat in range(args.repeats):
            ref_out, our_out = work / f"ref{repeat}", work / f"ours{repeat}"
            ref_runs.append(measure(lambda: upstream_style(work / "src", ref_out, tokenizer_dir, args.chunk_size)))
            our_runs.append(measure(lambda: prepare(
                work / "src", our_out, tokenizer_dir, chunk_size=args.chunk_size, num_workers=args.num_workers,
                progress=False, log=lambda line: None).tokens))
            print(f"  run {repeat + 1}: reference {ref_runs[-1].note()}; prepare {our_runs[-1].note()}")
            ours, ref = streams(our_out, "c4_*.bin", 24), streams(ref_out, "*.npy", 0)
            if ours.keys() != ref.keys() or any(not np.array_equal(ours[k], ref[k]) for k in ref):
                raise SystemExit("outputs differ: the token streams of the two methods are not identical")
            shutil.rmtree(ref_out)
            shutil.rmtree(our_out)

    tokens = ref_runs[0].tokens
    ref, ours = min(ref_runs, key=lambda r: r.wall), min(our_runs, key=lambda r: r.wall)
    ref_wall, ref_cpu, our_wall, our_cpu = ref.wall, ref.cpu, ours.wall, ours.cpu
    print(f"tokens: {tokens:,} per run (identical streams from both); the fastest run of each counts")
    print(f"reference, per document, 1 process: {ref_wall:7.2f} s  {tokens / ref_wall:12,.0f} tokens/s"
          f"  ({tokens / ref_cpu:,.0f} tokens per CPU-second)")
    print(f"lit_gpt.prepare (batched, parallel): {our_wall:7.2f} s  {tokens / our_wall:12,.0f} tokens/s"
          f"  ({tokens / our_cpu:,.0f} tokens per CPU-second)")
    print(f"speed-up: {ref_wall / our_wall:.2f}x wall clock, {ref_cpu / our_cpu:.2f}x per CPU-second")


if __name__ == "__main__":
    main()
