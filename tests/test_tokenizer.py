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
