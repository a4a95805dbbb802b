"""scripts/eval_lm_harness.sh: the lm_eval command it runs, offline switches, pass-through, dtype by
device, its errors, and a real lm_eval run on a local task."""

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "eval_lm_harness.sh"
SYSTEM_PATH = "/usr/bin:/bin"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def fake_lm_eval(bin_dir: Path, record: Path) -> None:
    """An `lm_eval` that records the offline variables and its arguments (one a line) instead of evaluating."""
    bin_dir.mkdir()
    script = bin_dir / "lm_eval"
    script.write_text(
        "#!/usr/bin/env bash\n"
        f"{{ echo \"${{HF_DATASETS_OFFLINE:-unset}}\"; echo \"${{HF_HUB_OFFLINE:-unset}}\"; printf '%s\\n' \"$@\"; }} > '{record}'\n"
    )
    script.chmod(0o755)


def fake_python(bin_dir: Path, cuda: bool) -> None:
    """A `python3` that answers the script's question whether torch sees a GPU."""
    script = bin_dir / "python3"
    script.write_text(f"#!/usr/bin/env bash\necho {cuda}\n")
    script.chmod(0o755)


def recorded(record: Path):
    datasets_offline, hub_offline, *argv = record.read_text().splitlines()
    return {"HF_DATASETS_OFFLINE": datasets_offline, "HF_HUB_OFFLINE": hub_offline}, argv


def run(args, path, **env):
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env={"PATH": path, **env}, capture_output=True, text=True, timeout=60)


@pytest.fixture
def hf_dir(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def test_runs_the_paper_tasks(tmp_path, hf_dir):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    fake_python(tmp_path / "bin", cuda=True)
    proc = run([hf_dir], f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert proc.returncode == 0, proc.stderr
    env, argv = recorded(record)
    assert argv[argv.index("--model") + 1] == "hf"
    assert argv[argv.index("--model_args") + 1] == f"pretrained={hf_dir},dtype=bfloat16"
    tasks = argv[argv.index("--tasks") + 1].split(",")
    assert sorted(tasks) == sorted(["arc_easy", "arc_challenge", "hellaswag", "piqa", "winogrande", "openbookqa", "boolq"])
    assert argv[argv.index("--batch_size") + 1] == "auto"
    assert argv[argv.index("--output_path") + 1] == f"{hf_dir}/lm_eval"
    assert env == {"HF_DATASETS_OFFLINE": "unset", "HF_HUB_OFFLINE": "unset"}


def test_offline_and_custom_tasks(tmp_path, hf_dir):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    proc = run([hf_dir, "piqa", tmp_path / "res"], f"{tmp_path / 'bin'}:{SYSTEM_PATH}", LM_EVAL_OFFLINE="1", LM_EVAL_ARGS="--limit 10")
    assert proc.returncode == 0, proc.stderr
    env, argv = recorded(record)
    assert env == {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    assert argv[argv.index("--tasks") + 1] == "piqa" and argv[argv.index("--output_path") + 1] == str(tmp_path / "res")
    assert argv[-2:] == ["--limit", "10"]


@pytest.mark.parametrize(
    "cuda, env, dtype, batch_size",
    [(False, {}, "float32", "1"), (True, {}, "bfloat16", "auto"), (True, {"LM_EVAL_DEVICE": "cpu"}, "float32", "1"),
     (False, {"LM_EVAL_DEVICE": "cuda:0"}, "bfloat16", "auto"), (False, {"LM_EVAL_DTYPE": "bfloat16"}, "bfloat16", "1"),
     (True, {"LM_EVAL_BATCH_SIZE": "8"}, "bfloat16", "8")],
)
def test_dtype_and_batch_size_follow_the_device(tmp_path, hf_dir, cuda, env, dtype, batch_size):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    fake_python(tmp_path / "bin", cuda)
    proc = run([hf_dir], f"{tmp_path / 'bin'}:{SYSTEM_PATH}", **env)
    assert proc.returncode == 0, proc.stderr
    _, argv = recorded(record)
    assert argv[argv.index("--model_args") + 1] == f"pretrained={hf_dir},dtype={dtype}"
    assert argv[argv.index("--batch_size") + 1] == batch_size


def test_options_pass_through_to_lm_eval_and_dtype_is_taken(tmp_path, hf_dir):
    record = tmp_path / "call.json"
    fake_lm_eval(tmp_path / "bin", record)
    fake_python(tmp_path / "bin", cuda=False)
    proc = run([hf_dir, "my_task", tmp_path / "res", "--include_path", tmp_path / "tasks", "--dtype", "float16",
                "--limit", "2"], f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert proc.returncode == 0, proc.stderr
    _, argv = recorded(record)
    assert argv[argv.index("--model_args") + 1] == f"pretrained={hf_dir},dtype=float16"
    assert argv[argv.index("--tasks") + 1] == "my_task"
    assert argv[-4:] == ["--include_path", str(tmp_path / "tasks"), "--limit", "2"]
    # options right after HF_DIR, the defaults kept for TASKS and OUT; a leading "--" is dropped
    proc = run([hf_dir, "--", "--include_path", "t"], f"{tmp_path / 'bin'}:{SYSTEM_PATH}")
    assert proc.returncode == 0, proc.stderr
    _, argv = recorded(record)
    assert argv[argv.index("--output_path") + 1] == f"{hf_dir}/lm_eval" and argv[-2:] == ["--include_path", "t"]


def test_clear_errors(tmp_path, hf_dir):
    proc = run([hf_dir], SYSTEM_PATH)
    assert proc.returncode != 0 and "lm_eval is not installed" in proc.stderr and "pip install lm-eval" in proc.stderr
    proc = run([tmp_path / "nothing"], SYSTEM_PATH)
    assert proc.returncode != 0 and "config.json" in proc.stderr
    proc = run([], SYSTEM_PATH)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = run([hf_dir, "piqa", tmp_path / "o", "stray"], SYSTEM_PATH)
    assert proc.returncode != 0 and "unexpected argument 'stray'" in proc.stderr


def test_help_prints_the_usage_and_exits_0():
    proc = run(["--help"], SYSTEM_PATH)
    assert proc.returncode == 0 and "HF_DIR [TASKS] [OUT]" in proc.stdout and "LM_EVAL_OFFLINE" in proc.stdout


OFFLINE_TRACE = """Traceback (most recent call last):
  File "/x/datasets/load.py", line 1125, in dataset_module_factory
    raise ConnectionError(f"Couldn't reach '{path}' on the Hub ({e.__class__.__name__})") from e
ConnectionError: Couldn't reach 'baber/piqa' on the Hub (OfflineModeIsEnabled)
"""


@pytest.mark.parametrize("trace, status", [(OFFLINE_TRACE, 2), ("Traceback (most recent call last):\nValueError: other\n", 1)])
def test_an_offline_dataset_missing_is_one_line(tmp_path, hf_dir, trace, status):
    """lm_eval's traceback for a dataset not on disk in offline mode becomes one line; others pass as they are."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "trace.txt").write_text(trace)
    script = bin_dir / "lm_eval"
    script.write_text(f"#!/usr/bin/env bash\necho progress >&2\ncat '{tmp_path / 'trace.txt'}' >&2\nexit 1\n")
    script.chmod(0o755)
    fake_python(bin_dir, cuda=False)
    proc = run([hf_dir, "piqa"], f"{bin_dir}:{SYSTEM_PATH}", LM_EVAL_OFFLINE="1")
    assert proc.returncode == status
    lines = proc.stderr.splitlines()
    assert lines[0] == "progress"
    if status == 2:
        assert len(lines) == 2 and lines[1].startswith("error: dataset 'baber/piqa' (for tasks piqa) is not on disk")
        assert "HF_DATASETS_CACHE" in lines[1] and "--include_path" in lines[1]
    else:
        assert lines[1:] == trace.splitlines()


TASK_YAML = """task: meap_local_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
WORDS = "the a cat dog sun moon sleeps runs in on warm cold red blue is where what".split()
DOCS = [
    {"question": "where the cat sleeps", "choices": ["in the sun", "on the moon"], "answer": 0},
    {"question": "what is red", "choices": ["the dog", "the sun", "a moon"], "answer": 1},
    {"question": "the dog runs", "choices": ["in the cold", "on a warm moon"], "answer": 0},
    {"question": "where is the blue moon", "choices": ["on the sun", "in the warm dog", "a cat"], "answer": 2},
    {"question": "what sleeps in the sun", "choices": ["a red cat", "the dog"], "answer": 1},
]


def tiny_hf_model(folder: Path):
    """A random 2-layer Llama with a word-level tokenizer (no BOS added, so the scores below are plain sums)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # a spread-out random model, so no two choices score alike
        model.lm_head.weight.mul_(50)
    model.save_pretrained(folder)
    return model, tokenizer


def reference_accuracy(model, tokenizer) -> float:
    """Multiple-choice accuracy computed here: the sum of log p(choice tokens | question tokens), argmax."""
    import torch

    correct = 0
    for doc in DOCS:
        context = tokenizer(doc["question"], add_special_tokens=False)["input_ids"]
        scores = []
        for choice in doc["choices"]:
            continuation = tokenizer(choice, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([context + continuation])
            with torch.no_grad():
                logprobs = model(ids).logits.float().log_softmax(-1)[0]
            scores.append(sum(logprobs[len(context) + i - 1, t].item() for i, t in enumerate(continuation)))
        correct += int(max(range(len(scores)), key=scores.__getitem__) == doc["answer"])
    return correct / len(DOCS)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("lm_eval") is None, reason="needs lm-eval (in requirements.txt)")
def test_real_lm_eval_on_a_local_task(tmp_path):
    model_dir = tmp_path / "hf"
    model, tokenizer = tiny_hf_model(model_dir)
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "meap_local_choice.yaml").write_text(TASK_YAML.format(data=data))
    env = {**os.environ, "LM_EVAL_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"}
    env.pop("LM_EVAL_DEVICE", None)
    env.pop("LM_EVAL_DTYPE", None)
    proc = subprocess.run(["bash", str(SCRIPT), model_dir, "meap_local_choice", tmp_path / "out",
                           "--include_path", tasks], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "dtype=float32" in proc.stdout  # the CPU default
    results = glob.glob(str(tmp_path / "out" / "**" / "results_*.json"), recursive=True)
    assert len(results) == 1, proc.stdout[-2000:]
    scores = json.loads(Path(results[0]).read_text())["results"]["meap_local_choice"]
    assert scores["acc,none"] == pytest.approx(reference_accuracy(model, tokenizer), abs=1e-9)
