import pytest

from lit_gpt.tokenizer import MASK_TOKEN, TokenizerError, load_tokenizer, tokenizer_info


def test_mask_token_gets_id_32000_on_a_32000_token_llama_tokenizer(llama_tokenizer_dir):
    tok = load_tokenizer(llama_tokenizer_dir)
    info = tokenizer_info(tok)
    assert info.mask_id == 32000 and info.vocab_size == 32001
    assert (info.bos_id, info.eos_id) == (1, 2)
    # [MASK] is one special token, never split.
    assert tok(f"a {MASK_TOKEN} b", add_special_tokens=False)["input_ids"].count(32000) == 1


def test_mask_token_is_added_once(llama_tokenizer_dir):
    tok = load_tokenizer(llama_tokenizer_dir)
    from lit_gpt.tokenizer import ensure_mask_token

    assert ensure_mask_token(tok) == 32000 and len(tok) == 32001


def test_missing_folder_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(TokenizerError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.fixture(scope="module")
def hf_llama_folder(llama_tokenizer_dir, tmp_path_factory):
    """The LLaMA-style model saved as a Hugging Face folder: tokenizer.json + tokenizer_config.json."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("hf_llama")
    AutoTokenizer.from_pretrained(str(llama_tokenizer_dir)).save_pretrained(folder)
    assert {"tokenizer.json", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    return folder


BROKEN = [
    ("tokenizer.json", "garbage{"),
    ("tokenizer.json", "[]"),
    ("tokenizer.json", "{}"),  # transformers ends in a bare 'added_tokens' KeyError here
    ("tokenizer.json", '{"added_tokens": 5}'),
    ("tokenizer.json", '{"added_tokens": [{"id": 1}]}'),
    ("tokenizer_config.json", "garbage{"),
    ("tokenizer_config.json", "[1, 2]"),
    ("tokenizer_config.json", '{"added_tokens_decoder": 5}'),
    ("tokenizer_config.json", '{"added_tokens_decoder": {"1": 3}}'),
    ("tokenizer_config.json", '{"tokenizer_class": 5}'),
    ("tokenizer_config.json", '{"eos_token": 2}'),
    ("special_tokens_map.json", "nonsense"),
]


@pytest.mark.parametrize("name,content", BROKEN)
def test_a_broken_file_is_named_not_just_its_folder(hf_llama_folder, tmp_path, name, content):
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(hf_llama_folder, folder)
    (folder / name).write_text(content)
    with pytest.raises(TokenizerError) as caught:
        load_tokenizer(folder)
    message = str(caught.value)
    assert str(folder / name) in message and "\n" not in message
    assert not message.endswith(": 'added_tokens'")  # a bare key says nothing; the error's type goes with it
