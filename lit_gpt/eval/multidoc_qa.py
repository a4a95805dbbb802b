"""Multi-document question answering with the gold document moved across positions (lost in the middle).

    python -m lit_gpt.eval.multidoc_qa --model_dir DIR \\
        --input_path nq-open-20_total_documents_gold_at_0.jsonl.gz --gold_positions 0,4,9,14,19 --out_dir OUT

Each input line holds `question`, `answers` (list) and `ctxs` (list of {title, text, isgold, hasanswer}),
as in the lost-in-the-middle release. The gold document (isgold, else the first with hasanswer) is
taken out and put back at each requested position among the others; the prompt is the paper's QA
instruction; decoding is greedy; the first line of the answer is scored by best-subspan exact match.
Writes OUT/results.json and OUT/accuracy_by_position.png. Gold positions are 0-based everywhere (0 =
the first document): in --gold_positions, the printed table, results.json and the plot, as in the
release's file names (gold_at_0).
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Optional, Sequence

from lit_gpt.errors import UserError
from lit_gpt.eval import options
from lit_gpt.eval.options import setting
from lit_gpt.eval.scoring import METRICS, scored

QA_INSTRUCTION = (
    "Write a high-quality answer for the given question using only the provided search results "
    "(some of which might be irrelevant)."
)
OUTPUT_FILES = ("results.json", "accuracy_by_position.png")


@dataclass
class QAExample:
    line: int
    question: str
    answers: list[str]
    gold: dict
    distractors: list[dict]


def read_examples(path: str | Path, limit: Optional[int] = None) -> list[QAExample]:
    """Reads lost-in-the-middle JSON lines; errors name the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"input file not found: {path}")
    examples = []
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{path} line {n} is not JSON: {err}") from err
                examples.append(_example(record, path, n))
                if limit is not None and len(examples) >= limit:
                    break
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as err:  # a corrupt or truncated .gz too
        raise UserError(f"could not read {path}: {err}") from None
    if not examples:
        raise UserError(f"{path} holds no examples")
    return examples


def _example(record: dict, path: Path, n: int) -> QAExample:
    where = f"{path} line {n}"
    if not isinstance(record, dict) or not isinstance(record.get("question"), str):
        raise UserError(f"{where} has no 'question' string")
    answers = record.get("answers")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise UserError(f"{where} has no 'answers' list of strings")
    ctxs = record.get("ctxs")
    if not isinstance(ctxs, list) or not ctxs or not all(isinstance(c, dict) and "text" in c for c in ctxs):
        raise UserError(f"{where} has no 'ctxs' list of documents with 'text'")
    gold_index = next((i for key in ("isgold", "hasanswer") for i, c in enumerate(ctxs) if c.get(key)), None)
    if gold_index is None:
        raise UserError(f"{where} has no gold document (no ctx with isgold or hasanswer)")
    distractors = [c for i, c in enumerate(ctxs) if i != gold_index]
    return QAExample(n, record["question"], answers, ctxs[gold_index], distractors)


def arrange(example: QAExample, gold_position: int, num_documents: Optional[int] = None) -> list[dict]:
    """The documents in prompt order: `num_documents - 1` distractors with the gold one at `gold_position`."""
    total = num_documents or len(example.distractors) + 1
    if total - 1 > len(example.distractors):
        raise UserError(f"line {example.line} has {len(example.distractors) + 1} documents, fewer than {total}")
    if not 0 <= gold_position < total:
        raise UserError(f"gold position {gold_position} is outside 0..{total - 1} ({total} documents)")
    documents = list(example.distractors[: total - 1])
    documents.insert(gold_position, example.gold)
    return documents


def qa_prompt(question: str, documents: Sequence[dict]) -> str:
    """The lost-in-the-middle QA prompt; documents are numbered from 1."""
    results = "\n".join(
        f"Document [{i}](Title: {doc.get('title') or ''}) {doc['text']}" for i, doc in enumerate(documents, 1)
    )
    return f"{QA_INSTRUCTION}\n\n{results}\n\nQuestion: {question}\nAnswer:"


def default_gold_positions(num_documents: int) -> list[int]:
    """0, 4, 9, 14, ... and the last position: the paper's sweep (0,4,9 for 10 documents; 0,4,9,14,19 for 20)."""
    return sorted({0, *range(4, num_documents, 5), num_documents - 1})


def _position(text: str) -> int:
    import argparse

    value = options.parse_as(int, text, f"gold position {text!r} is not an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"gold position {value} is negative (positions start at 0)")
    return value


@dataclass(kw_only=True)
class MultiDocSettings(options.ModelSettings):
    input_path: str = setting(help="lost-in-the-middle .jsonl or .jsonl.gz")
    gold_positions: Optional[list[int]] = setting(  # None: default_gold_positions
        None, type=options.comma_list(_position),
        help="0-based (0 = the first document), as in the output, results.json and the plot; default 0,4,9,...,last")
    num_documents: Optional[int] = setting(None, type=options.positive_int, help="gold + first N-1 distractors")
    limit: Optional[int] = setting(None, type=options.positive_int, help="only the first N questions")
    max_new_tokens: int = setting(100, type=options.positive_int)
    metric: str = setting("best_subspan_em", choices=list(METRICS))
    chat_template: bool = setting(False, help="wrap the prompt in the tokenizer's chat template")
    batch_size: int = setting(8, type=options.positive_int)


def _encode(tokenizer, prompt: str, chat_template: bool) -> list[int]:
    if not chat_template:
        return list(tokenizer(prompt)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("--chat_template was given but the tokenizer has no chat template")
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def run_multidoc_qa(settings: MultiDocSettings, command: Optional[str] = None) -> dict:
    from lit_gpt.eval.generation import greedy_generate
    from lit_gpt.eval.plots import plot_accuracy_by_position

    examples = read_examples(settings.input_path, settings.limit)
    num_documents = settings.num_documents or len(examples[0].distractors) + 1
    positions = sorted(set(settings.gold_positions or default_gold_positions(num_documents)))
    jobs = [(ex, pos, arrange(ex, pos, settings.num_documents)) for pos in positions for ex in examples]
    loaded = settings.load_model(OUTPUT_FILES)
    prompts = [_encode(loaded.tokenizer, qa_prompt(ex.question, docs), settings.chat_template) for ex, _, docs in jobs]
    longest = max(len(p) for p in prompts) + settings.max_new_tokens
    settings.check_positions(longest, loaded, f"{settings.input_path}: the longest prompt + answer")
    out_dir = settings.make_out_dir()
    generations = greedy_generate(loaded.model, loaded.tokenizer, prompts, settings.max_new_tokens, settings.batch_size,
                                  desc="multidoc QA")
    records = [
        {
            "line": ex.line,
            "gold_position": pos,
            "num_documents": len(docs),
            "prompt_tokens": len(ids),
            "question": ex.question,
            "answers": ex.answers,
            **scored(generation, ex.answers, settings.metric),
        }
        for (ex, pos, docs), ids, generation in zip(jobs, prompts, generations)
    ]
    accuracy = {str(pos): fmean(r["correct"] for r in records if r["gold_position"] == pos) for pos in positions}
    results = {
        **settings.results_head(
            "multidoc_qa", loaded, gold_positions=positions, num_documents=num_documents, examples=len(examples),
            longest_prompt_tokens=max(len(p) for p in prompts), command=command,
        ),
        "accuracy": {
            "metric": settings.metric,
            "by_gold_position": accuracy,
            "overall": sum(r["correct"] for r in records) / len(records),
            "n": len(records),
        },
        "records": records,
    }
    options.write_json(out_dir / "results.json", results)
    name = Path(settings.model_dir).name
    plot_accuracy_by_position({int(k): v for k, v in accuracy.items()}, out_dir / "accuracy_by_position.png",
                              title=f"{num_documents}-document QA: {name}", label=name)
    return results


def report(settings: MultiDocSettings, results: dict) -> None:
    acc = results["accuracy"]
    print(f"multi-document QA ({acc['metric']}, {results['settings']['num_documents']} documents) of {settings.model_dir}")
    for pos, value in acc["by_gold_position"].items():
        print(f"  gold at position {int(pos):>3} (0-based): {100 * value:5.1f}%")
    print(f"  overall                     : {100 * acc['overall']:5.1f}%  ({acc['n']} prompts)")
    print(f"wrote {Path(settings.out_dir) / 'results.json'} and {Path(settings.out_dir) / 'accuracy_by_position.png'}")


main = options.command(MultiDocSettings, run_multidoc_qa, report, "lit_gpt.eval.multidoc_qa", __doc__)

if __name__ == "__main__":
    main()
