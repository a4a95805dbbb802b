"""Weight files load through `lit_gpt.io.safe_load`: every pickle protocol, and nothing in them ever runs.

References: the tensors as they were before `torch.save`, `torch.load(weights_only=True)` where it
loads, and Python's own unpickler, which does run the hostile payloads used here (checked first).
"""

import builtins
import importlib
import os
import pickle
import runpy
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.io.safe_load import UnsafeCheckpointError, load_torch_file

transformers = pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[2]
TENSOR_KEYS = ("bf16", "fp16", "int", "transposed", "rows", "base", "param")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def weights() -> dict:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=gen)
    return {
        "bf16": torch.randn(4, 3, generator=gen).to(torch.bfloat16),
        "fp16": torch.randn(5, generator=gen).to(torch.float16),
        "int": torch.arange(7),
        "transposed": base.t(),  # non-contiguous
        "rows": base[2:4],  # a view at an offset into the same storage
        "base": base,
        "param": torch.nn.Parameter(torch.randn(3, generator=gen)),
        "meta": {"step": 3, "lr": 4e-4, "name": "run", "none": None, "flag": True, "ids": [1, (2, 3)], "raw": b"\x00\xff",
                 "dtype": torch.bfloat16, "shape": torch.Size([2, 3]), "ordered": OrderedDict(a=1), "tags": {"x"}},
    }


def assert_same(loaded: dict, saved: dict) -> None:
    assert loaded.keys() == saved.keys()
    for key in TENSOR_KEYS:
        got, want = loaded[key], saved[key]
        assert (got.dtype, got.shape, got.stride(), got.storage_offset()) == (want.dtype, want.shape, want.stride(), want.storage_offset())
        assert torch.equal(got.view(torch.uint8) if got.dtype == torch.bfloat16 else got, want.view(torch.uint8) if want.dtype == torch.bfloat16 else want)
    assert type(loaded["param"]) is torch.nn.Parameter
    # The views still share one storage, as they did when saved.
    storages = {loaded[k].untyped_storage().data_ptr() for k in ("base", "rows", "transposed")}
    assert len(storages) == 1
    assert loaded["meta"] == saved["meta"]


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_loads_the_same_tensors(tmp_path, protocol, zip_format):
    saved = weights()
    path = tmp_path / "pytorch_model.bin"
    torch.save(saved, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    assert_same(load_torch_file(path), saved)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_mmap_false_reads_the_file_into_memory(tmp_path, zip_format):
    saved = weights()
    path = tmp_path / "in_memory.pth"
    torch.save(saved, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_file(path, mmap=False)
    assert_same(loaded, saved)
    maps = Path("/proc/self/maps")
    if maps.is_file():
        assert str(path) not in maps.read_text()


def test_zip_files_are_memory_mapped_and_agree_with_weights_only(tmp_path):
    saved = weights()
    path = tmp_path / "plain.pth"
    torch.save(saved, path)  # protocol 2: what torch.load(weights_only=True) reads
    loaded = load_torch_file(path)
    assert_same(loaded, torch.load(path, weights_only=True))
    maps = Path("/proc/self/maps")
    if maps.is_file():  # the storages are views of the file, not copies in memory
        assert str(path) in maps.read_text()


# ----------------------------------------------------------------------------- hostile files
class Payload:
    """Unpickling this calls `func(*args)`, which is what a hostile checkpoint does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payload(kind: str, marker: Path) -> tuple[Payload, str]:
    """-> (object whose unpickling creates `marker`, the global it names)."""
    if kind == "os.system":
        return Payload(os.system, (f"touch '{marker}'",)), f"{os.system.__module__}.system"
    return Payload(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)), "builtins.exec"


def write_hostile(path: Path, kind: str, protocol: int, container: str, marker: Path) -> str:
    obj, name = payload(kind, marker)
    if container == "raw pickle":  # no tensors: plain pickle stores them through torch.load itself
        with open(path, "wb") as f:
            pickle.dump({"step": 1, "evil": obj}, f, protocol=protocol)
    else:
        state = {"model.embed_tokens.weight": torch.zeros(4, 2), "evil": obj}
        torch.save(state, path, pickle_protocol=protocol, _use_new_zipfile_serialization=container == "torch zip")
    return name


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec"])
def test_the_payloads_run_when_unpickled_naively(tmp_path, kind):
    """The control: without the allow-list these files do run code, so the refusals below mean something."""
    marker = tmp_path / "marker"
    write_hostile(tmp_path / "evil.pkl", kind, 5, "raw pickle", marker)
    with open(tmp_path / "evil.pkl", "rb") as f:
        pickle.load(f)
    assert marker.exists()


def main_of(module_or_script: str, args: list) -> int:
    """Runs an entry point in this process as `python convert/SCRIPT` / `python -m MODULE` would; -> exit code."""
    saved = sys.argv
    sys.argv = [module_or_script, *map(str, args)]
    try:
        if module_or_script.endswith(".py"):
            runpy.run_path(str(REPO / "convert" / module_or_script), run_name="__main__")
        else:
            importlib.import_module(module_or_script).main([str(a) for a in args])
        return 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("container", ["torch zip", "torch legacy", "raw pickle"])
@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec"])
def test_convert_safetensors_refuses_a_hostile_bin_in_one_line(tmp_path, capsys, kind, protocol, container):
    marker, path, out = tmp_path / "marker", tmp_path / "pytorch_model.bin", tmp_path / "st"
    name = write_hostile(path, kind, protocol, container, marker)
    assert main_of("convert_safetensors.py", ["--checkpoint_path", path, "--out_dir", out]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and name in line and "nothing in this one was run" in line
    assert not marker.exists() and not out.exists()


def tiny_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(61)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(folder)


def tiny_hf_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(config).eval()


def hf_folder_with_bin(folder: Path, state, protocol: int = 5) -> Path:
    """A Hugging Face folder as upstream's converter leaves it: config, tokenizer, pytorch_model.bin."""
    model = tiny_hf_llama()
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    tiny_tokenizer(folder)
    torch.save(state if state is not None else model.state_dict(), folder / "pytorch_model.bin", pickle_protocol=protocol)
    return folder


def test_every_reader_refuses_a_hostile_file(tmp_path, capsys):
    from lit_gpt.pretrain.checkpoint import load_initial_weights

    marker = tmp_path / "marker"
    evil_pth = tmp_path / "evil.pth"
    name = write_hostile(evil_pth, "os.system", 5, "torch zip", marker)
    hf = hf_folder_with_bin(tmp_path / "hf", {"evil": payload("builtins.exec", marker)[0]})
    capsys.readouterr()
    runs = [
        ("convert_lit_checkpoint.py", ["--checkpoint_name", evil_pth, "--out_dir", tmp_path / "o1", "--model_name", "micro_LLaMA"], evil_pth, name),
        ("convert_hf_checkpoint.py", ["--checkpoint_dir", hf, "--out", tmp_path / "o2.pth"], hf / "pytorch_model.bin", "builtins.exec"),
        ("lit_gpt.eval.retrieval", ["--model_dir", hf, "--task", "passkey", "--out_dir", tmp_path / "o3"], hf / "pytorch_model.bin", "builtins.exec"),
        ("lit_gpt.eval.retrieval", ["--model_dir", evil_pth, "--task", "passkey", "--tokenizer_dir", hf, "--out_dir", tmp_path / "o4"], evil_pth, name),
    ]
    for entry, args, path, refused in runs:
        assert main_of(entry, args) == 2, entry
        line = one_error_line(capsys)
        assert str(path) in line and refused in line, line
    with pytest.raises(UnsafeCheckpointError, match=name):  # the trainer's --init_from
        load_initial_weights(str(evil_pth), config=None)
    assert not marker.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("o1", "o2", "o3", "o4", ".o"))]


# ----------------------------------------------------------------------------- upstream files that are fine
def test_a_protocol_5_hf_folder_evaluates_as_the_same_model(tmp_path):
    from lit_gpt.eval.models import load_model

    reference = tiny_hf_llama()
    folder = hf_folder_with_bin(tmp_path / "hf", None)
    loaded = load_model(folder, device="cpu", dtype="float32")
    idx = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded.model(idx).logits, reference(idx).logits)


def test_a_protocol_5_lit_state_dict_serves_init_from(tmp_path):
    from lit_gpt.config import Config
    from lit_gpt.model import GPT
    from lit_gpt.pretrain.checkpoint import load_initial_weights

    config = Config(name="t", block_size=16, vocab_size=64, padding_multiple=64, n_layer=1, n_embd=32, n_head=4,
                    n_query_groups=2, intermediate_size=48)
    saved = {k: v.clone() for k, v in GPT(config, fused=False).state_dict().items()}
    torch.save(saved, tmp_path / "init.pth", pickle_protocol=5)
    loaded = load_initial_weights(str(tmp_path / "init.pth"), config)
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)


# ----------------------------------------------------------------------------- damaged files
def damage(folder: Path, how: str) -> Path:
    """Damages one safetensors file of `folder` the way a failed copy does; -> that file."""
    shards = sorted(folder.glob("*.safetensors"))
    target = shards[-1]
    data = target.read_bytes()
    if how == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif how == "corrupt header":
        target.write_bytes(data[:8] + b"\x00" * 64 + data[72:])
    else:  # "not safetensors": e.g. an HTML error page saved under the shard's name
        target.write_bytes(b"<html>404</html>")
    return target


@pytest.mark.parametrize("sharded", [False, True], ids=["single", "sharded"])
@pytest.mark.parametrize("how", ["truncated", "corrupt header", "not safetensors"])
def test_eval_names_a_damaged_safetensors_file_in_one_line(tmp_path, capsys, how, sharded):
    folder = tmp_path / "hf"
    tiny_hf_llama().save_pretrained(folder, max_shard_size="60KB" if sharded else "5GB")
    tiny_tokenizer(folder)
    n_files = len(list(folder.glob("*.safetensors")))
    assert n_files >= 2 if sharded else n_files == 1
    bad = damage(folder, how)
    capsys.readouterr()
    assert main_of("lit_gpt.eval.retrieval", ["--model_dir", folder, "--task", "passkey", "--out_dir", tmp_path / "out"]) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and "not a readable safetensors file" in line
    assert not (tmp_path / "out").exists()


def test_multidoc_qa_names_a_damaged_or_hostile_file_in_one_line(tmp_path, capsys):
    import gzip
    import json

    data = tmp_path / "qa.jsonl.gz"
    with gzip.open(data, "wt") as f:
        f.write(json.dumps({"question": "q", "answers": ["a"], "ctxs": [{"title": "t", "text": "x", "isgold": True}]}) + "\n")
    folder = tmp_path / "hf"
    tiny_hf_llama().save_pretrained(folder)
    tiny_tokenizer(folder)
    bad = damage(folder, "truncated")
    capsys.readouterr()
    args = ["--input_path", data, "--out_dir", tmp_path / "out", "--gold_positions", "0"]
    assert main_of("lit_gpt.eval.multidoc_qa", ["--model_dir", folder, *args]) == 2
    assert str(bad) in one_error_line(capsys)
    marker = tmp_path / "marker"
    hf = hf_folder_with_bin(tmp_path / "hf_bin", {"evil": payload("os.system", marker)[0]}, protocol=2)
    capsys.readouterr()
    assert main_of("lit_gpt.eval.multidoc_qa", ["--model_dir", hf, *args]) == 2
    assert str(hf / "pytorch_model.bin") in one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_truncated_checkpoint_is_one_line_naming_it(tmp_path):
    path = tmp_path / "step.pth"
    torch.save(weights(), path, pickle_protocol=5)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match=f"{path}: could not read it as a PyTorch checkpoint"):
        load_torch_file(path)


def test_pickle_build_cannot_tamper_with_torch_functions(tmp_path):
    """BUILD sets attributes on whatever object a pickle holds; aimed at an allowed torch function it
    would replace `torch.serialization._get_layout.cache` for the whole process."""
    def unicode(text: str) -> bytes:
        return b"X" + len(text).to_bytes(4, "little") + text.encode()

    # global _get_layout; BUILD with {"cache": {"strided": 1}}; STOP (hand-written protocol 2 opcodes)
    hostile = (b"\x80\x02ctorch.serialization\n_get_layout\n}" + unicode("cache") + b"}" + unicode("torch.strided")
               + b"K\x01ssb.")
    path = tmp_path / "tamper.pth"
    path.write_bytes(hostile)
    with pytest.raises(UserError, match=str(path)):  # not a torch file: the object is not even returned
        load_torch_file(path)
    assert torch.serialization._get_layout("torch.strided") is torch.strided


def test_an_empty_file_is_named_as_empty(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(UserError) as err:
        load_torch_file(path)
    assert str(err.value) == f"{path}: the file is empty, not a checkpoint"
