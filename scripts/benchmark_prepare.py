"""Throughput of data preparation: lit_gpt.prepare.pipeline against the usual alternatives, same input, same run.

    python scripts/benchmark_prepare.py --text_dir /usr/share/doc --megabytes 32    # natural text here
    python scripts/benchmark_prepare.py --source_path /data/c4/en --files 4         # real C4 shards
    python scripts/benchmark_prepare.py --megabytes 30                               # the embedded sample
    python scripts/benchmark_prepare.py --text_dir /usr/share/doc --formats          # one text, three formats
    python scripts/benchmark_prepare.py --parquet_rss 200                            # peak memory, 200 MB Parquet

`--formats`: prepare on the same documents as .json.gz, .jsonl.zst and .parquet files, side by
side (the chunks must be equal). `--parquet_rss MB`: peak resident memory of a one-worker prepare
of one Parquet file of about MB megabytes with small row groups, against the file's size.

Input: the first `--files` C4 .json.gz files of `--source_path`; or C4-shaped files built from the
text files under `--text_dir` (documentation, licences, man pages: natural prose with many distinct
words; .gz files are read too), about `--megabytes` MB; or the embedded sample corpus repeated
(few distinct words, which flatters prepare's word cache: not for quoting).

Methods, run in turn within each repeat (the order rotates between repeats) and timed the same way:
- reference: one process, each document encoded on its own and packed, as upstream's prepare does;
- prepare: `lit_gpt.prepare.prepare`;
- datasets: Hugging Face `load_dataset("json")` + `.map(batched=True, num_proc=N)` + packing (when
  `datasets` is installed);
- litdata: `litdata.optimize` with a per-document generator and `TokensLoader` (when installed).
All use the encoding prepare chooses for the tokenizer (for a tokenizer.model the sentencepiece
library, BOS + ids + EOS), and the run stops unless all wrote the same tokens: the same stream for
reference, prepare and datasets; for litdata, whose workers interleave documents, the same documents.
The output reports tokens/s, tokens per CPU-second, and the CPU other processes used meanwhile (a
loaded machine skews every figure). Default tokenizer: the 32000-token LLaMA-style sentencepiece
model shipped in mistral-common, else the sample tokenizer.
"""

import argparse
import contextlib
import gzip
import json
import os
import random
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may download
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402

from lit_gpt.cli import exit_on_user_error
from lit_gpt.errors import UserError  # noqa: E402
from lit_gpt.data import HEADER_SIZE, ChunkWriter as PackedDatasetBuilder, token_dtype  # noqa: E402
from lit_gpt.prepare.pipeline import DEFAULT_CHUNK_SIZE, MANIFEST, prepare  # noqa: E402
from lit_gpt.prepare.token_encoding import make_encoder  # noqa: E402
from lit_gpt.tokenizer import load_tokenizer, sentencepiece_model_file  # noqa: E402

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


# --------------------------------------------------------------------------- inputs


def write_c4_files(out_dir: Path, texts: list[str], files: int) -> int:
    """`texts` as C4 JSON lines spread over `files` .json.gz files; their size unzipped."""
    out_dir.mkdir(parents=True)
    total = 0
    for i in range(files):
        lines = "".join(json.dumps({"text": t, "timestamp": "2019-04-25T12:57:54Z", "url": f"https://x.invalid/{i}"},
                                   ensure_ascii=False) + "\n" for t in texts[i::files])
        data = lines.encode()
        (out_dir / f"c4-train.{i:05d}-of-{files:05d}.json.gz").write_bytes(gzip.compress(data, compresslevel=6))
        total += len(data)
    return total


def sample_texts(megabytes: float, seed: int = 0) -> list[str]:
    """The sample's training documents, shuffled and repeated."""
    records = []
    for path in sorted(SAMPLE.glob("c4-train.*.json.gz")):
        with gzip.open(path, "rt") as f:
            records += [json.loads(line)["text"] for line in f]
    rng = random.Random(seed)
    texts, size = [], 0
    while size < megabytes * 1e6:
        texts.append(rng.choice(records))
        size += len(texts[-1])
    return texts


def natural_texts(text_dir: Path, megabytes: float, seed: int = 0) -> tuple[list[str], int]:
    """Documents of 1-8k characters (paragraphs kept whole) from the text files under `text_dir`,
    in a fixed order; and how many distinct words they hold."""
    if not text_dir.is_dir():
        raise UserError(f"--text_dir {text_dir} is not a folder")
    paragraphs: list[str] = []
    size = 0
    for path in sorted(p for p in text_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, ValueError):
            continue  # binary or unreadable: not text
        if "\x00" in text or not text.strip():
            continue
        for paragraph in text.split("\n\n"):
            if paragraph.strip():
                paragraphs.append(paragraph)
                size += len(paragraph) + 2
        if size >= megabytes * 1e6:
            break
    if size < 1e6:
        raise UserError(f"--text_dir {text_dir}: only {size / 1e6:.2f} MB of text found")
    rng = random.Random(seed)
    texts, start = [], 0
    while start < len(paragraphs):
        target, doc, length = rng.randint(1000, 8000), [], 0
        while start < len(paragraphs) and length < target:
            doc.append(paragraphs[start])
            length += len(paragraphs[start]) + 2
            start += 1
        texts.append("\n\n".join(doc))
    distinct = len(set(word for text in texts for word in text.split()))
    return texts, distinct


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


# --------------------------------------------------------------------------- the document encoding


class DocumentIds:
    """One document's ids as prepare writes them (BOS + ids + EOS for a sentencepiece model, else
    the tokenizer call + EOS), by the plain library call; picklable for worker processes."""

    def __init__(self, tokenizer_dir: Path):
        self.tokenizer_dir = tokenizer_dir
        self._load()

    def _load(self) -> None:
        model = sentencepiece_model_file(self.tokenizer_dir)
        if model is not None:
            import sentencepiece

            sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
            bos = [sp.bos_id()] if sp.bos_id() >= 0 else []
            self.one = lambda text: bos + sp.encode(text) + [sp.eos_id()]
            self.many = lambda texts: [bos + ids + [sp.eos_id()] for ids in sp.encode(texts, num_threads=1)]
            self.eos = sp.eos_id()
        else:
            tokenizer = load_tokenizer(self.tokenizer_dir)
            eos = tokenizer.eos_token_id
            self.one = lambda text: tokenizer(text, split_special_tokens=True)["input_ids"] + [eos]
            self.many = lambda texts: [ids + [eos] for ids in tokenizer(
                texts, split_special_tokens=True, return_attention_mask=False)["input_ids"]]
            self.eos = eos

    def __getstate__(self) -> dict:
        return {"tokenizer_dir": self.tokenizer_dir}

    def __setstate__(self, state: dict) -> None:
        self.tokenizer_dir = state["tokenizer_dir"]
        self._load()

    def __call__(self, batch: dict) -> dict:  # for datasets.map(batched=True)
        return {"input_ids": self.many(batch["text"])}


def iter_texts(path: Path):
    with gzip.open(path, "rb") as f:
        for line in f:
            yield json.loads(line)["text"]


# --------------------------------------------------------------------------- the methods


def run_reference(src: Path, out: Path, ids: DocumentIds, dtype, chunk_size: int) -> int:
    """One process, one document at a time, packed as upstream's PackedDatasetBuilder does."""
    tokens = 0
    out.mkdir(parents=True)
    for path in sorted(src.glob("*.json.gz")):
        builder = PackedDatasetBuilder(out, path.name.removesuffix(".json.gz"), chunk_size, ids.eos, dtype)
        for text in iter_texts(path):
            doc = np.array(ids.one(text), dtype=dtype)
            builder.add_array(doc)
            tokens += doc.size
        builder.finish()
    return tokens


def run_prepare(src: Path, out: Path, tokenizer_dir: Path, chunk_size: int, workers: Optional[int]) -> int:
    return prepare(src, out, tokenizer_dir, chunk_size=chunk_size, num_workers=workers, progress=False,
                   log=lambda line: None).tokens


def run_datasets(src: Path, out: Path, ids: DocumentIds, dtype, chunk_size: int, workers: int) -> int:
    import datasets

    datasets.disable_progress_bars()
    files = [str(p) for p in sorted(src.glob("*.json.gz"))]
    ds = datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(out / "cache"))
    ds = ds.map(ids, batched=True, batch_size=1000, num_proc=workers, remove_columns=ds.column_names)
    flat = ds.data.column("input_ids").combine_chunks().flatten().to_numpy().astype(dtype)
    builder = PackedDatasetBuilder(out, "datasets", chunk_size, ids.eos, dtype)
    builder.add_array(flat)
    builder.finish()
    return int(flat.size)


class LitdataItems:
    """litdata's `fn`: one source file in, one token tensor per document out (as litgpt's recipes do)."""

    def __init__(self, ids: DocumentIds):
        self.ids = ids

    def __call__(self, path: str):
        import torch

        for text in iter_texts(Path(path)):
            yield torch.tensor(self.ids.one(text), dtype=torch.int32)


def run_litdata(src: Path, out: Path, ids: DocumentIds, chunk_size: int, workers: int) -> int:
    from litdata import TokensLoader, optimize

    files = [str(p) for p in sorted(src.glob("*.json.gz"))]
    optimize(fn=LitdataItems(ids), inputs=files, output_dir=str(out), chunk_size=chunk_size, num_workers=workers,
             item_loader=TokensLoader(), mode="overwrite", start_method="fork")
    return sum(doc.size for doc in litdata_documents(out))


# --------------------------------------------------------------------------- reading the outputs back


def packed_stream(out: Path, prefixes: list[str], lengths: list[int]) -> np.ndarray:
    """The tokens of each prefix's chunk files, padding cut off (`lengths`), in order."""
    parts = []
    for prefix, length in zip(prefixes, lengths):
        files = sorted(out.glob(f"{prefix}_*.bin"))
        parts.append(np.concatenate([np.fromfile(f, dtype=np.uint8)[HEADER_SIZE:] for f in files])
                     .view(_dtype_of(files[0]))[:length])
    return np.concatenate(parts)


def _dtype_of(path: Path):
    code = path.read_bytes()[15]
    return {8: np.uint16, 4: np.int32}[code]


def litdata_documents(out: Path):
    """Each item of litdata's chunk files (uint32 count, uint32 offsets, item bytes): one document."""
    for chunk in sorted(out.glob("chunk-*.bin")):
        raw = chunk.read_bytes()
        count = int(np.frombuffer(raw, np.uint32, 1)[0])
        offsets = np.frombuffer(raw, np.uint32, count + 1, offset=4)
        for start, end in zip(offsets[:-1], offsets[1:]):
            yield np.frombuffer(raw[start:end], np.int32)


def check_outputs(outs: dict, src: Path, eos: int) -> None:
    """Stops unless every method wrote prepare's tokens (padding aside): the same stream, or for
    litdata the same documents."""
    names = [p.name for p in sorted(src.glob("*.json.gz"))]
    entries = [json.loads((outs["prepare"] / MANIFEST).read_text())["sources"][name] for name in names]
    lengths = [e["tokens"] for e in entries]
    want = packed_stream(outs["prepare"], [e["chunk_prefix"] for e in entries], lengths)
    for method, out in outs.items():
        if method == "reference":
            same = np.array_equal(packed_stream(out, [n.removesuffix(".json.gz") for n in names], lengths), want)
        elif method == "datasets":
            same = np.array_equal(packed_stream(out, ["datasets"], [sum(lengths)]), want)
        elif method == "litdata":
            same = Counter(doc.tobytes() for doc in litdata_documents(out)) == documents_of(want, eos)
        else:
            continue
        if not same:
            raise SystemExit(f"{method} wrote other tokens than prepare: the comparison is void")


def documents_of(stream: np.ndarray, eos: int) -> Counter:
    cuts = np.flatnonzero(stream == eos) + 1
    return Counter(doc.astype(np.int32).tobytes() for doc in np.split(stream, cuts)[:-1])


# --------------------------------------------------------------------------- timing


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the workers of each method)."""
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
        busy = "" if self.others is None else f", others {max(self.others, 0) / self.wall:.1f} cores"
        return f"{self.wall:.1f} s{busy}"


def measure(run: Callable[[], int]) -> Run:
    busy, wall, cpu = busy_seconds(), time.perf_counter(), cpu_seconds()
    tokens = run()
    wall, cpu, busy_after = time.perf_counter() - wall, cpu_seconds() - cpu, busy_seconds()
    return Run(tokens, wall, cpu, None if busy is None or busy_after is None else busy_after - busy - cpu)


def quietly(function, *args):
    """Runs `function` with its (and its forked workers') progress lines kept off the output."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        return function(*args)


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- formats and memory


def write_format(out_dir: Path, texts: list[str], files: int, fmt: str) -> None:
    """`texts` spread over `files` files of one format, named as C4's training shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    out_dir.mkdir(parents=True)
    for i in range(files):
        part = texts[i::files]
        name = out_dir / f"c4-train.{i:05d}-of-{files:05d}"
        if fmt == "parquet":
            pq.write_table(pa.table({"text": part}), f"{name}.parquet", row_group_size=1000)
            continue
        data = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in part).encode()
        if fmt == "json.gz":
            Path(f"{name}.json.gz").write_bytes(gzip.compress(data, compresslevel=6))
        else:
            Path(f"{name}.jsonl.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(data))


def compare_formats(work: Path, texts: list[str], tokenizer_dir: Path, files: int, workers: Optional[int],
                    chunk_size: int, repeats: int) -> None:
    formats = ("json.gz", "jsonl.zst", "parquet")
    for fmt in formats:
        write_format(work / fmt, texts, files, fmt)
    best: dict[str, Run] = {}
    for repeat in range(repeats):
        outs = {}
        for fmt in formats[repeat % 3:] + formats[: repeat % 3]:
            outs[fmt] = work / f"out-{fmt}"
            run = measure(lambda: run_prepare(work / fmt, outs[fmt], tokenizer_dir, chunk_size, workers))
            if fmt not in best or run.wall < best[fmt].wall:
                best[fmt] = run
        chunks = {fmt: sorted((p.name, p.read_bytes()) for p in out.glob("*.bin")) for fmt, out in outs.items()}
        if any(c != chunks["json.gz"] for c in chunks.values()):
            raise SystemExit("the formats gave different chunks: the comparison is void")
        for out in outs.values():
            shutil.rmtree(out)
    for fmt in formats:
        run, size = best[fmt], sum(p.stat().st_size for p in (work / fmt).iterdir())
        print(f"{fmt:>9}: {size / 1e6:7.1f} MB on disk, {run.wall:6.2f} s, {run.tokens / run.wall:12,.0f} tokens/s "
              f"({run.tokens / run.cpu:10,.0f} per CPU-second; {run.note()})")


RSS_CHILD = """
import resource, sys
from lit_gpt.prepare.pipeline import prepare
prepare(sys.argv[1], sys.argv[2], sys.argv[3], chunk_size=4097 * 1024, num_workers=1, progress=False,
        log=lambda line: None)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def parquet_rss(work: Path, texts: list[str], megabytes: float, tokenizer_dir: Path) -> None:
    """Peak RSS of prepare on one Parquet file of ~`megabytes` MB, with a baseline of a tiny one."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    def run(src: Path, out: Path) -> int:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", RSS_CHILD, str(src), str(out), str(tokenizer_dir)],
                              capture_output=True, text=True, env=env, check=True)
        return int(done.stdout.split()[-1]) * 1024

    big, small = work / "big", work / "small"
    big.mkdir()
    small.mkdir()
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(big / "c4-train.00000-of-00001.parquet", schema, compression="none") as writer:
        size, rng = 0, random.Random(0)
        while size < megabytes * 1e6:
            rows = [rng.choice(texts) for _ in range(500)]
            writer.write_table(pa.table({"text": rows}, schema=schema), row_group_size=500)
            size += sum(len(t) for t in rows)
    pq.write_table(pa.table({"text": texts[:100]}), small / "c4-train.00000-of-00001.parquet")
    file_size = (big / "c4-train.00000-of-00001.parquet").stat().st_size
    rss_big, rss_small = run(big, work / "out-big"), run(small, work / "out-small")
    print(f"parquet {file_size / 1e6:.0f} MB (row groups of 500 rows, uncompressed): peak RSS {rss_big / 1e6:.0f} MB; "
          f"the same run on a 100-row file: {rss_small / 1e6:.0f} MB")


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=30.0, help="uncompressed input size (generated inputs)")
    parser.add_argument("--files", type=int, default=8, help="input files (prepare parallelises over files)")
    parser.add_argument("--source_path", default=None, help="benchmark on the first --files C4 .json.gz files here")
    parser.add_argument("--text_dir", default=None, help="build the input from the text files under this folder")
    parser.add_argument("--tokenizer_dir", default=None, help="default: mistral-common's 32000-token model")
    parser.add_argument("--num_workers", type=int, default=None,
                        help="processes of each parallel method (default: cores)")
    parser.add_argument("--chunk_size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all methods; the fastest run of each counts")
    parser.add_argument("--methods", default="reference,prepare,datasets,litdata",
                        help="comma-separated; datasets and litdata are skipped when not installed")
    parser.add_argument("--formats", action="store_true",
                        help="compare prepare on .json.gz, .jsonl.zst and .parquet of the same documents")
    parser.add_argument("--parquet_rss", type=float, default=None, metavar="MB",
                        help="measure peak RSS of prepare on one Parquet file of about MB megabytes")
    args = parser.parse_args(argv)
    for name in ("megabytes", "files", "chunk_size", "repeats", "num_workers"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UserError(f"--{name} {getattr(args, name)}: must be > 0")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"reference", "prepare", "datasets", "litdata"}
    if unknown or "prepare" not in methods:
        raise UserError(f"--methods must include prepare and name only reference, prepare, datasets, litdata: "
                        f"{args.methods}")
    if args.source_path and args.text_dir:
        raise UserError("--source_path and --text_dir: choose one input")
    missing = [m for m in ("datasets", "litdata") if m in methods and not available(m)]
    methods = [m for m in methods if m not in missing]
    workers = args.num_workers or os.cpu_count() or 1

    if args.source_path and (args.formats or args.parquet_rss):
        raise UserError("--formats and --parquet_rss write their own inputs (from --text_dir or the sample); "
                        "--source_path would be ignored")
    with tempfile.TemporaryDirectory(prefix="meap-bench-") as tmp:
        work = Path(tmp)
        if args.tokenizer_dir:
            tokenizer_dir, tokenizer_name = Path(args.tokenizer_dir), str(args.tokenizer_dir)
        else:
            tokenizer_dir, tokenizer_name = default_tokenizer(work)
        if args.source_path:
            size, what = link_input(work / "src", Path(args.source_path), args.files), f"C4 files of {args.source_path}"
        elif args.text_dir:
            texts, distinct = natural_texts(Path(args.text_dir), args.megabytes)
            size = write_c4_files(work / "src", texts, args.files)
            what = f"{len(texts):,} documents from the text under {args.text_dir}, {distinct:,} distinct words"
        else:
            if not SAMPLE.is_dir():
                raise UserError(f"the sample corpus is missing: {SAMPLE}")
            texts = sample_texts(args.megabytes)
            size, what = write_c4_files(work / "src", texts, args.files), "the sample repeated"
        if args.formats or args.parquet_rss:
            print(f"input: {len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} M characters; tokenizer: "
                  f"{tokenizer_name}; cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
            if args.formats:
                compare_formats(work, texts, tokenizer_dir, args.files, args.num_workers, args.chunk_size,
                                args.repeats)
            if args.parquet_rss:
                parquet_rss(work, texts, args.parquet_rss, tokenizer_dir)
            return
        src = work / "src"
        print(f"input: {len(list(src.glob('*.json.gz')))} .json.gz files, {size / 1e6:.1f} MB of JSON lines ({what})")
        # Loading once first keeps the one-off imports out of the timings.
        tokenizer = load_tokenizer(tokenizer_dir)
        dtype = token_dtype(len(tokenizer))
        encoder = make_encoder(tokenizer, tokenizer_dir, dtype)
        why = f" ({encoder.why_not_word_cache})" if encoder.why_not_word_cache else ""
        ids = DocumentIds(tokenizer_dir)
        print(f"tokenizer: {tokenizer_name}; prepare encodes with {encoder.library} by {encoder.method}{why}")
        print(f"cores: {os.cpu_count()}, workers: {workers}, load average before: {os.getloadavg()[0]:.2f}"
              + (f"; not installed, skipped: {', '.join(missing)}" if missing else ""))
        # Each method loads its tokenizer inside its timing, as a run of it would.
        runners = {
            "reference": lambda out: run_reference(src, out, DocumentIds(tokenizer_dir), dtype, args.chunk_size),
            "prepare": lambda out: run_prepare(src, out, tokenizer_dir, args.chunk_size, args.num_workers),
            "datasets": lambda out: run_datasets(src, out, DocumentIds(tokenizer_dir), dtype, args.chunk_size, workers),
            "litdata": lambda out: quietly(run_litdata, src, out, DocumentIds(tokenizer_dir), args.chunk_size, workers),
        }
        runs: dict[str, list[Run]] = {m: [] for m in methods}
        for repeat in range(args.repeats):
            order = methods[repeat % len(methods):] + methods[: repeat % len(methods)]
            outs = {m: work / f"{m}{repeat}" for m in order}
            for method in order:
                runs[method].append(measure(lambda: runners[method](outs[method])))
            check_outputs(outs, src, ids.eos)
            for out in outs.values():
                shutil.rmtree(out)
            print(f"  round {repeat + 1}: " + "; ".join(f"{m} {runs[m][-1].note()}" for m in order))

    tokens = runs["prepare"][0].tokens
    best = {m: min(r, key=lambda run: run.wall) for m, r in runs.items()}
    print(f"tokens: {tokens:,} per run, the same from every method; the fastest run of each counts")
    for method, run in best.items():
        ratio = "" if method == "prepare" else (f"   prepare / {method}: {run.wall / best['prepare'].wall:.2f}x "
                                                f"tokens/s, {run.cpu / best['prepare'].cpu:.2f}x per CPU-second")
        print(f"{method:>9}: {run.wall:7.2f} s {tokens / run.wall:12,.0f} tokens/s "
              f"({tokens / run.cpu:10,.0f} per CPU-second){ratio}")


if __name__ == "__main__":
    main()
