"""Loading a Hugging Face tokenizer from a local folder and making sure it has `[MASK]`.

Every stage (data preparation, pretraining, conversion, SFT, evaluation) goes through
`load_tokenizer`, so the mask id is the same everywhere: with the 32000-token LLaMA-2 tokenizer
`[MASK]` gets id 32000.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from lit_gpt.errors import UserError, first_line

MASK_TOKEN = "[MASK]"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
SENTENCEPIECE_MODEL = "tokenizer.model"


class TokenizerError(UserError, ValueError):
    """A tokenizer folder that cannot be used; the message names the folder, or the file at fault."""


# The JSON files transformers reads from a tokenizer folder, each a JSON object.
JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
# Settings of tokenizer_config.json whose type transformers relies on without checking it.
_CONFIG_TYPES = {
    "tokenizer_class": (str, type(None)),
    "added_tokens_decoder": (dict,),
    "additional_special_tokens": (list, type(None)),
    "extra_special_tokens": (list, dict, type(None)),
    **{name: (str, dict, type(None)) for name in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token",
                                                   "sep_token", "cls_token")},
}


def load_tokenizer(tokenizer_dir: Union[str, Path], add_mask_token: bool = True, trust_remote_code: bool = False):
    """Loads the tokenizer in `tokenizer_dir` (tokenizer.json or a sentencepiece tokenizer.model).

    Only local files are read. `[MASK]` is added as a special token when it is missing. A folder
    with only a sentencepiece `tokenizer.model` (no tokenizer.json or tokenizer_config.json to say
    otherwise) starts each text with BOS, as the same model in a Hugging Face LLaMA folder does.
    """
    from transformers import AutoTokenizer  # heavy import, kept out of `import lit_gpt`

    path = Path(tokenizer_dir).expanduser()
    if not path.is_dir():
        raise TokenizerError(f"tokenizer directory not found: {path}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerError(f"{path} holds neither {' nor '.join(TOKENIZER_FILES)}")
    check_json_files(path)
    options = {"add_bos_token": True} if is_bare_sentencepiece_folder(path) else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=trust_remote_code, **options
        )
    except Exception as err:  # transformers raises many types; the user needs the file and the cause
        raise TokenizerError(f"could not load the tokenizer in {_file_at_fault(path)}: {_cause(err)}") from err
    if add_mask_token:
        ensure_mask_token(tokenizer)
    return tokenizer


def check_json_files(path: Path) -> None:
    """Each JSON file of the folder parses to an object, and tokenizer_config.json's typed settings
    have their types: transformers would otherwise fail deep inside with a message naming neither."""
    import json

    for name in JSON_FILES:
        file = path / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise TokenizerError(f"cannot read {file} as JSON: {err}") from None
        if not isinstance(data, dict):
            raise TokenizerError(f"{file} must hold a JSON object, not a {type(data).__name__}")
        if name == "tokenizer_config.json":
            for key, types in _CONFIG_TYPES.items():
                if key in data and not isinstance(data[key], types):
                    raise TokenizerError(f"{file}: {key} must be {' or '.join(_JSON_NAMES[t] for t in types)}, "
                                         f"not {_JSON_NAMES.get(type(data[key]), type(data[key]).__name__)}")
            decoder = data.get("added_tokens_decoder") or {}
            bad = next((k for k, v in decoder.items() if not isinstance(v, dict) or not isinstance(v.get("content"), str)), None)
            if bad is not None:
                raise TokenizerError(f"{file}: added_tokens_decoder[{bad!r}] must be an object with a string content")


_JSON_NAMES = {str: "a string", dict: "an object", list: "a list", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def _file_at_fault(path: Path) -> Path:
    """The file of a folder that transformers could not load: tokenizer.json when the tokenizers
    library refuses it on its own; tokenizer_config.json beside a sound tokenizer.json; the
    tokenizer.model of a folder holding nothing else; else the folder."""
    file, config = path / "tokenizer.json", path / "tokenizer_config.json"
    if file.is_file():
        from tokenizers import Tokenizer

        try:
            Tokenizer.from_file(str(file))
        except Exception:  # the Rust library raises its own exception type
            return file
        return config if config.is_file() else path
    if is_bare_sentencepiece_folder(path):
        return path / SENTENCEPIECE_MODEL
    return path


def _cause(err: BaseException) -> str:
    """One line: a bare KeyError says only the key, so its type is named too."""
    text = first_line(err)
    return f"{type(err).__name__} {text}" if isinstance(err, (KeyError, TypeError, AttributeError)) else text


def sentencepiece_model_file(tokenizer_dir: Union[str, Path]) -> Path | None:
    """The sentencepiece model in `tokenizer_dir`, if it has one."""
    path = Path(tokenizer_dir).expanduser() / SENTENCEPIECE_MODEL
    return path if path.is_file() else None


def is_bare_sentencepiece_folder(path: Path) -> bool:
    """Only a tokenizer.model: nothing in the folder says whether texts start with BOS."""
    return (path / SENTENCEPIECE_MODEL).is_file() and not any(
        (path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")
    )


def ensure_mask_token(tokenizer) -> int:
    """Adds `[MASK]` as a special token if the tokenizer lacks it; returns its id."""
    if MASK_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
    elif tokenizer.mask_token != MASK_TOKEN:
        tokenizer.mask_token = MASK_TOKEN
    return tokenizer.convert_tokens_to_ids(MASK_TOKEN)


@dataclass(frozen=True)
class TokenizerInfo:
    """The ids every stage needs, recorded in data manifests and checkpoints."""

    vocab_size: int  # including added tokens such as [MASK]
    bos_id: int | None
    eos_id: int
    mask_id: int | None
    adds_bos: bool  # whether encode(text) starts with BOS

    def to_dict(self) -> dict:
        return dict(vars(self))


def tokenizer_info(tokenizer, source: Union[str, Path, None] = None) -> TokenizerInfo:
    where = f" in {source}" if source is not None else ""
    if tokenizer.eos_token_id is None:
        raise TokenizerError(f"the tokenizer{where} has no EOS token, which separates documents")
    mask_id = tokenizer.convert_tokens_to_ids(MASK_TOKEN) if MASK_TOKEN in tokenizer.get_vocab() else None
    probe = tokenizer("a")["input_ids"]
    adds_bos = tokenizer.bos_token_id is not None and len(probe) > 0 and probe[0] == tokenizer.bos_token_id
    return TokenizerInfo(
        vocab_size=len(tokenizer),
        bos_id=tokenizer.bos_token_id,
        eos_id=tokenizer.eos_token_id,
        mask_id=mask_id,
        adds_bos=adds_bos,
    )
