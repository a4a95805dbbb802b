"""Fixtures shared across test files."""

import os
import shutil
from pathlib import Path

import pytest
import torch

# Lightning gives its loggers a StreamHandler bound to whatever sys.stderr is when it is first
# imported. Imported here, that is pytest's session-long capture; imported first inside a test
# using capsys, it would be that test's stream, closed afterwards, and later tests would see
# "--- Logging error ---" tracebacks in their stderr.
import lightning.fabric  # noqa: E402,F401


@pytest.fixture(scope="session")
def llama_tokenizer_dir(tmp_path_factory) -> Path:
    """A folder holding the real 32000-token LLaMA-style sentencepiece model that ships in
    mistral-common (SPEC §7), as `tokenizer.model`. Read-only: copy the file to write next to it."""
    mistral_common = pytest.importorskip("mistral_common")
    model = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not model.is_file():
        pytest.skip("mistral-common without its tokenizer.model.v1")
    folder = tmp_path_factory.mktemp("llama_tokenizer")
    shutil.copy(model, folder / "tokenizer.model")
    return folder


# Session-scoped: the evaluation tests and test_install.py share it (built once per worker that
# needs it). tests/eval/test_multidoc_qa.py defines its own `model_dir`, which wins there.
@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, llama_tokenizer_dir) -> Path:
    """A tiny random LlamaForCausalLM folder with the LLaMA tokenizer (and [MASK])."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lit_gpt.tokenizer import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny_llama")
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread: on a shared 2-core machine, spinning OpenMP threads can
    make them 30x slower. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def restore_environment():
    """In-process runs of the trainer leave Lightning's and torch.distributed's variables (RANK,
    WORLD_SIZE, MASTER_ADDR, ...) in os.environ, and may leave a default process group open; a later
    in-process run would take them for a launcher's, or fail to start its own group. Every test
    starts from the environment the session started with and no process group."""
    saved = dict(os.environ)
    yield
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os.environ.clear()
    os.environ.update(saved)
