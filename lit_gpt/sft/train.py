"""MEAP supervised fine-tuning of a Hugging Face causal LM with `transformers.Trainer` (SPEC §3).

Every `TrainingArguments` option works (--num_train_epochs, --bf16, --gradient_checkpointing,
--deepspeed, --fsdp, ...) next to the model, data, MEAP and LoRA arguments below. The output
folder holds the model and the tokenizer (with `[MASK]`), loadable with `from_pretrained`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Literal, Optional, Sequence

from lit_gpt.errors import UserError, first_line
from lit_gpt.sft.builder import MEAP_MODES
from lit_gpt.sft.templates import TEMPLATES, get_template
from lit_gpt.sft.upstream import UPSTREAM_MIN_ANSWER_TOKENS, UPSTREAM_TEMPLATES, SlowLlamaEncoding, UpstreamSettings


def opt(default, help: str):
    """A field with its `--help` (HfArgumentParser reads it from the metadata; a Literal type gives the choices)."""
    return field(default=default, metadata={"help": help})


DTYPES = ("float32", "bfloat16", "float16", "auto")
MIN_COPY_SHARE = 0.9  # of the samples eligible by answer length; fewer copies is refused unless allowed
PRESETS = ("default", "upstream")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "Local folder of the Hugging Face causal LM to fine-tune (required)."})
    tokenizer_name_or_path: Optional[str] = opt(None, "Local tokenizer folder; defaults to the model folder.")
    trust_remote_code: bool = opt(False, "Run Python code shipped inside the model folder (off unless asked).")
    torch_dtype: Literal[DTYPES] = opt(
        "float32", "dtype of the loaded weights: float32 keeps fp32 master weights under --bf16 autocast; bfloat16 "
        "halves memory (DeepSpeed keeps its own fp32 copy); auto = the checkpoint's dtype. One of "
        f"{', '.join(DTYPES)}.")
    attn_implementation: Optional[str] = opt(None, "Attention kernel: sdpa, eager, flash_attention_2, ... "
                                             "(default: transformers' choice).")


@dataclass
class DataArguments:
    train_file: Optional[str] = opt(None, "Training data: one .json or .jsonl file.")
    train_file_dir: Optional[str] = opt(None, "Training data: every .json/.jsonl file under this folder.")
    validation_file: Optional[str] = opt(None, "Validation data: one .json or .jsonl file.")
    validation_file_dir: Optional[str] = opt(None, "Validation data: every .json/.jsonl file under this folder.")
    validation_split_percentage: Optional[float] = opt(
        None, "Without validation files: hold out this percentage of the training records (default 0; 1 with "
        "--preset upstream, whose first 1%% of the records upstream holds out as validation and never trains on).")
    template_name: Optional[Literal[tuple(sorted(TEMPLATES))]] = opt(
        None, f"Prompt template: {', '.join(sorted(TEMPLATES))} (default vicuna; llama3 with --preset upstream).")
    system_prompt: Optional[str] = opt(None, "System prompt for records without one (default: the template's).")
    max_train_samples: Optional[int] = opt(None, "Use only the first N training records.")
    max_eval_samples: Optional[int] = opt(None, "Use only the first N validation records.")
    preprocessing_num_workers: Optional[int] = opt(None, "Processes for tokenization.")
    cache_dir: Optional[str] = opt(None, "Where `datasets` caches the tokenized data.")
    overwrite_cache: bool = opt(False, "Tokenize again instead of reusing the cache.")

    def __post_init__(self):
        if not self.train_file and not self.train_file_dir:
            raise UserError("no training data: give --train_file or --train_file_dir")
        if self.validation_split_percentage and (self.validation_file or self.validation_file_dir):
            raise UserError("give either --validation_file/--validation_file_dir or --validation_split_percentage, not both")


@dataclass
class MEAPArguments:
    preset: Literal[PRESETS] = opt(
        "default", "default: this project's examples; upstream: the upstream MEAP-SFT code's examples token for "
        "token (one example per turn without history, masked copies as examples of their own, its llama3 template; "
        "see lit_gpt/sft/upstream.py). One of " + ", ".join(PRESETS) + ".")
    meap_mode: Optional[Literal[MEAP_MODES]] = opt(
        None, "concat: masked copy appended to each sample (the paper, default); separate: masked copy as its own "
        "sequence (the upstream code; the only MEAP mode of --preset upstream); ntp: plain next-token prediction.")
    mask_ratio: float = opt(0.1, "Fraction of answer tokens masked in the copy.")
    min_answer_tokens: Optional[int] = opt(None, "Answers shorter than this get no masked copy (default 50; "
                                           f"{UPSTREAM_MIN_ANSWER_TOKENS}, i.e. more than 50, with --preset upstream).")
    model_max_length: int = opt(4096, "Longest training sequence (original + copy in concat mode).")
    make_room_for_copy: bool = opt(False, "concat: a sample too long for original + copy is cut to half of "
                                   "--model_max_length and followed by its masked copy (the paper's layout kept; the "
                                   "original loses its end).")
    allow_few_masked_copies: bool = opt(False, f"Train although fewer than {MIN_COPY_SHARE:.0%}% of the samples long "
                                        "enough for a masked copy will carry one (they would train plain NTP).")
    pad_to_multiple_of: Optional[int] = opt(None, "Pad batches to a multiple of this length.")

    def __post_init__(self):
        upstream = self.preset == "upstream"
        if self.meap_mode is None:
            self.meap_mode = "separate" if upstream else "concat"
        if self.min_answer_tokens is None:
            self.min_answer_tokens = UPSTREAM_MIN_ANSWER_TOKENS if upstream else 50
        if upstream and self.meap_mode == "concat":
            raise UserError("--preset upstream makes its masked copies separate examples: use --meap_mode separate or ntp")
        if self.make_room_for_copy and self.meap_mode != "concat":
            raise UserError(f"--make_room_for_copy applies to --meap_mode concat, not {self.meap_mode}")


@dataclass
class LoraArguments:
    use_lora: bool = opt(False, "Train LoRA adapters (needs `pip install peft`).")
    lora_r: int = opt(8, "LoRA rank.")
    lora_alpha: float = opt(16.0, "LoRA scaling alpha.")
    lora_dropout: float = opt(0.05, "Dropout on the LoRA input.")
    lora_target_modules: str = opt("all-linear", "Comma-separated module names, or all-linear (every linear but "
                                   "the head).")
    lora_merge: bool = opt(True, "Also save the merged full model in output_dir (the adapter goes to output_dir/adapter).")


# Every number's range, checked by the settings layer's one rule (`check_value`: one line naming the
# option, NaN refused) before anything loads; transformers takes its own without a check and fails
# later (a division by zero, a rank-0 adapter, a NaN loss scale). LoRA's only count with --use_lora.
_NUMBERS = {"data": {"validation_split_percentage": {"ge": 0, "lt": 100}, "max_train_samples": {"ge": 1},
                     "max_eval_samples": {"ge": 1}, "preprocessing_num_workers": {"ge": 1}},
            "meap": {"mask_ratio": {"ge": 0, "le": 1}, "min_answer_tokens": {"ge": 0}, "model_max_length": {"ge": 2},
                     "pad_to_multiple_of": {"ge": 1}},
            "lora": {"lora_r": {"ge": 1}, "lora_alpha": {"gt": 0}, "lora_dropout": {"ge": 0, "lt": 1}},
            "training": {"per_device_train_batch_size": {"ge": 1}, "per_device_eval_batch_size": {"ge": 1},
                         "gradient_accumulation_steps": {"ge": 1}, "learning_rate": {"ge": 0}, "weight_decay": {"ge": 0},
                         "max_grad_norm": {"ge": 0}, "num_train_epochs": {"gt": 0}, "warmup_ratio": {"ge": 0, "le": 1}}}


def _check_numbers(**owners) -> None:
    from lit_gpt.cli import check_value

    for owner, numbers in _NUMBERS.items():
        for name, bounds in numbers.items():
            value = getattr(owners[owner], name, None)
            if value is not None and (owner != "lora" or owners["lora"].use_lora):
                check_value(name, value, float if isinstance(value, float) else int, bounds)


@dataclass
class SFTResult:
    output_dir: Path
    train_summary: object
    eval_summary: object
    collator_stats: dict
    log_history: list


def own_help(prog: str) -> str:
    """`--help`: SFT's own options, one entry each; the Trainer's hundreds are behind --help_trainer."""
    import textwrap

    lines = [f"usage: {prog} --model_name_or_path DIR --train_file FILE --output_dir OUT [options] [Trainer options]",
             "", __doc__.split("\n\n")[0]]
    for title, cls in (("model", ModelArguments), ("data", DataArguments), ("MEAP", MEAPArguments), ("LoRA", LoraArguments)):
        lines += ["", f"{title}:"]
        for f in fields(cls):
            default = f" (default: {f.default})" if f.default not in (None, False, MISSING) else ""
            lines += textwrap.wrap(f.metadata["help"].replace("%%", "%") + default, 110,
                                   initial_indent=f"  --{f.name:<28}", subsequent_indent=" " * 32)
    return "\n".join(lines + ["", "Trainer: every transformers TrainingArguments option passes through (--output_dir,",
                               "required; --num_train_epochs, --learning_rate, --bf16, --deepspeed, --fsdp, ...);",
                               f"`{prog} --help_trainer` lists them."])


def parse_arguments(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None):
    """(ModelArguments, DataArguments, MEAPArguments, LoraArguments, TrainingArguments) from the command line."""
    from transformers import HfArgumentParser, TrainingArguments

    class Parser(HfArgumentParser):
        def error(self, message):  # argparse would print the whole TrainingArguments usage first
            raise UserError(message)

    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or Path(sys.argv[0]).name
    if "--help_trainer" in argv:
        Parser(TrainingArguments, prog=prog).print_help()
        raise SystemExit(0)
    if {"-h", "--help"} & set(argv):
        print(own_help(prog))
        raise SystemExit(0)
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--output_dir", "--output-dir")
    if probe.parse_known_args(argv)[0].output_dir is None:  # --help has exited above
        raise UserError("--output_dir is required")
    parser = Parser((ModelArguments, DataArguments, MEAPArguments, LoraArguments, TrainingArguments))
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    except ValueError as err:  # TrainingArguments validates its combinations with ValueError
        raise UserError(first_line(err)) from None
    if remaining:
        raise UserError(f"unknown arguments: {' '.join(remaining)}")
    model_args, data_args, meap_args, lora_args, training_args = parsed
    _check_numbers(data=data_args, meap=meap_args, lora=lora_args, training=training_args)
    if meap_args.preset == "upstream":
        data_args.template_name = data_args.template_name or "llama3"
        if data_args.template_name not in UPSTREAM_TEMPLATES:
            raise UserError(f"--preset upstream: template {data_args.template_name!r} is not one of upstream's: "
                            f"{', '.join(sorted(UPSTREAM_TEMPLATES))}")
    data_args.template_name = data_args.template_name or "vicuna"
    if data_args.validation_split_percentage is None:  # upstream's validation_split_percentage=1
        upstream_split = meap_args.preset == "upstream" and not (data_args.validation_file or data_args.validation_file_dir)
        data_args.validation_split_percentage = 1.0 if upstream_split else 0.0
    # Our samples are python objects the collator reads; the Trainer must pass them through.
    training_args.remove_unused_columns = False
    return model_args, data_args, meap_args, lora_args, training_args


def main(argv: Optional[Sequence[str]] = None) -> SFTResult:
    parsed = parse_arguments(argv)
    if not sys.stderr.isatty():  # progress bars only on an interactive terminal
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        parsed[-1].disable_tqdm = True  # the Trainer still prints its log lines
    from lit_gpt.io.run_lock import RunDirLock, is_launching_process
    from lit_gpt.sft.checks import check_world_size

    # Before the lock: with a launcher world the Trainer does not share, every rank is its own
    # process 0, and the world-size refusal is the one line each should print.
    check_world_size(parsed[-1])
    first = is_launching_process(parsed[-1].world_size, parsed[-1].output_dir) and parsed[-1].process_index == 0
    with RunDirLock(parsed[-1].output_dir, "--output_dir", enabled=first):
        return run(*parsed)


def run(model_args, data_args, meap_args, lora_args, training_args) -> SFTResult:
    import torch
    from transformers import AutoModelForCausalLM

    from lit_gpt.io.atomic import disk_errors
    from lit_gpt.io.hyperparameters import write_hyperparameters
    from lit_gpt.sft.checks import check_checkpoint_files, check_masked_copies, check_model_weights, check_remote_code
    from lit_gpt.sft.data import MEAPCollator, find_data_files
    from lit_gpt.sft.stats import MEAPTrainer, describe
    from lit_gpt.tokenizer import load_tokenizer, tokenizer_info

    output_dir = Path(training_args.output_dir)
    resume = _resolve_resume(training_args.resume_from_checkpoint, output_dir)
    if resume is not None:
        check_checkpoint_files(resume)
    model_dir = _local_model_dir(model_args.model_name_or_path)
    tokenizer_dir = Path(model_args.tokenizer_name_or_path or model_dir).expanduser()
    check_remote_code(model_dir, "--model_name_or_path", model_args.trust_remote_code)
    if tokenizer_dir != model_dir:
        check_remote_code(tokenizer_dir, "--tokenizer_name_or_path", model_args.trust_remote_code)
    train_files = find_data_files(data_args.train_file, data_args.train_file_dir, "train")
    eval_files = find_data_files(data_args.validation_file, data_args.validation_file_dir, "validation")
    template = get_template(data_args.template_name)
    eval_strategy = getattr(training_args.eval_strategy, "value", training_args.eval_strategy)
    if eval_strategy != "no" and not eval_files and not data_args.validation_split_percentage:
        raise UserError(f"--eval_strategy {eval_strategy} needs --validation_file, --validation_file_dir "
                        "or --validation_split_percentage")

    tokenizer = load_tokenizer(tokenizer_dir, trust_remote_code=model_args.trust_remote_code)
    if tokenizer.pad_token is None:  # padding is never attended to nor labeled; EOS is a safe filler
        tokenizer.pad_token = tokenizer.eos_token
    info = tokenizer_info(tokenizer, tokenizer_dir)
    main_process = training_args.process_index == 0
    missing = [t for t in template.special_tokens if t not in tokenizer.get_vocab()]
    if missing and main_process:
        print(f"warning: template {template.name!r} writes {', '.join(missing)}, which this tokenizer splits into "
              "ordinary tokens", file=sys.stderr)

    with training_args.main_process_first(desc="tokenizing the SFT data"):
        train_data, train_summary, eval_data, eval_summary = _prepare_data(
            data_args, meap_args, tokenizer, template, train_files, eval_files, training_args.seed, tokenizer_dir
        )
    if eval_strategy != "no" and eval_data is None:
        raise UserError(f"--eval_strategy {eval_strategy}: --validation_split_percentage "
                        f"{data_args.validation_split_percentage} of the records holds out none")
    check_masked_copies(train_summary, meap_args, MIN_COPY_SHARE)
    if main_process:
        print(f"train data: {train_summary}")
        if eval_summary is not None:
            print(f"validation data (scored as plain next-token prediction): {eval_summary}")

    check_model_weights(model_dir)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        local_files_only=True,
        trust_remote_code=model_args.trust_remote_code,
        dtype=model_args.torch_dtype if model_args.torch_dtype == "auto" else getattr(torch, model_args.torch_dtype),
        **({"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}),
    )
    added = resize_embeddings_with_mean(model, len(tokenizer))
    if added and main_process:
        print(f"added {added} embedding rows (the mean of the existing rows) for {len(tokenizer)} tokens")
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and meap_args.model_max_length > max_positions and main_process:
        print(f"warning: --model_max_length {meap_args.model_max_length} exceeds the model's "
              f"max_position_embeddings {max_positions}", file=sys.stderr)
    align_special_tokens(model, tokenizer)
    if training_args.gradient_checkpointing:
        model.config.use_cache = False
    if lora_args.use_lora:
        model = _wrap_with_lora(model, lora_args, info.mask_id, training_args.gradient_checkpointing)

    collator = MEAPCollator(
        mode=meap_args.meap_mode,
        mask_ratio=meap_args.mask_ratio,
        mask_token_id=info.mask_id,
        eos_token_id=info.eos_id,
        pad_token_id=tokenizer.pad_token_id,
        max_length=meap_args.model_max_length,
        min_answer_tokens=meap_args.min_answer_tokens,
        seed=training_args.seed,
        pad_to_multiple_of=meap_args.pad_to_multiple_of,
        preset=meap_args.preset,
        make_room=meap_args.make_room_for_copy,
    )
    trainer = MEAPTrainer(
        model=model,
        args=training_args,
        train_dataset=train_data,
        # validation: plain NTP loss, comparable across MEAP modes
        eval_dataset=eval_data.add_column("ntp_only", [True] * len(eval_data)) if eval_data is not None else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    if main_process:  # every input is checked by now: a refused run leaves nothing behind
        write_hyperparameters(output_dir, {"model": asdict(model_args), "data": asdict(data_args), "meap": asdict(meap_args),
                                           "lora": asdict(lora_args), "training": training_args.to_dict()})
    with disk_errors(f"--output_dir {output_dir}"):  # the Trainer's checkpoints and the final model
        trainer.train(resume_from_checkpoint=resume)
        _save(trainer, tokenizer, output_dir, lora_args, training_args)
    counts = trainer.finish_counts()
    if main_process:
        print(f"trained on: {describe(counts)} (all processes and DataLoader workers)")
        print(f"saved the model and the tokenizer (with [MASK] = id {info.mask_id}) to {output_dir}")
    return SFTResult(output_dir, train_summary, eval_summary, counts, list(trainer.state.log_history))


def _prepare_data(data_args, meap_args, tokenizer, template, train_files, eval_files, seed, tokenizer_dir):
    from lit_gpt.sft.data import select_trainable, split_records, tokenize_files

    upstream = None
    if meap_args.preset == "upstream":
        upstream = UpstreamSettings(
            template=UPSTREAM_TEMPLATES[data_args.template_name],
            max_length=meap_args.model_max_length,
            min_answer_tokens=meap_args.min_answer_tokens,
            masked_copies=meap_args.meap_mode != "ntp",
            slow_llama=SlowLlamaEncoding.for_folder(tokenizer_dir, tokenizer),  # read once for both splits
        )
    options = dict(system_prompt=data_args.system_prompt, cache_dir=data_args.cache_dir,
                   num_proc=data_args.preprocessing_num_workers, overwrite_cache=data_args.overwrite_cache)
    tokenized = tokenize_files(train_files, tokenizer, template, max_records=data_args.max_train_samples,
                               upstream=upstream, **options)
    eval_tokenized = None
    if eval_files:
        eval_tokenized = tokenize_files(eval_files, tokenizer, template, max_records=data_args.max_eval_samples,
                                        upstream=upstream and replace(upstream, masked_copies=False), **options)
    elif data_args.validation_split_percentage and upstream:
        # rows are upstream's examples (turns, copies): hold out upstream's first records, whole, and
        # their copies not at all (upstream's `train[:1%]` / `train[1%:]` of the records)
        train_rows, eval_rows = split_records(tokenized, data_args.validation_split_percentage)
        eval_tokenized = tokenized.select(eval_rows) if eval_rows else None
        tokenized = tokenized.select(train_rows)
    elif data_args.validation_split_percentage:
        n_eval = max(1, round(len(tokenized) * data_args.validation_split_percentage / 100))
        if n_eval >= len(tokenized):
            raise UserError(f"--validation_split_percentage {data_args.validation_split_percentage} leaves no "
                            f"training record out of {len(tokenized)}")
        split = tokenized.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
        tokenized, eval_tokenized = split["train"], split["test"]
        if data_args.max_eval_samples is not None:
            eval_tokenized = eval_tokenized.select(range(min(data_args.max_eval_samples, len(eval_tokenized))))

    splits = []
    for data, what, files in ((tokenized, "training", train_files), (eval_tokenized, "validation", eval_files)):
        if data is None:
            splits += [None, None]
            continue
        data, summary = select_trainable(
            data, max_length=meap_args.model_max_length, min_answer_tokens=meap_args.min_answer_tokens,
            mode=meap_args.meap_mode if what == "training" else "ntp", mask_ratio=meap_args.mask_ratio,
            make_room=meap_args.make_room_for_copy, upstream=upstream is not None,
        )
        if len(data) == 0:
            raise UserError(f"no usable {what} example: {summary}")
        if summary.empty_answers == summary.examples - summary.masked_copies:
            names = ", ".join(str(f) for f in files or train_files)
            raise UserError(f"{names}: every answer of the {summary.records - summary.unusable} usable {what} records is empty: "
                            "nothing to learn but the end of text")
        splits += [data, summary]
    return splits


def resize_embeddings_with_mean(model, vocab_size: int) -> int:
    """Grows the input (and untied output) embeddings to `vocab_size` rows; new rows = mean of the old.

    A mean row leaves the next-token distribution nearly unchanged (the new token's logit is the
    average logit) and gives `[MASK]` a neutral input vector. Returns the number of rows added.
    """
    import torch

    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return 0
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        matrices = [model.get_input_embeddings().weight]
        output = model.get_output_embeddings()
        if output is not None and output.weight is not matrices[0]:
            matrices.append(output.weight)
        for weight in matrices:
            weight[old:] = weight[:old].mean(dim=0, keepdim=True).to(weight.dtype)
        if output is not None and getattr(output, "bias", None) is not None and output.bias.shape[0] > old:
            output.bias[old:] = output.bias[:old].mean()
    return vocab_size - old


def align_special_tokens(model, tokenizer) -> None:
    """Writes the tokenizer's EOS/BOS/PAD ids into the model's config and generation config, as the
    Trainer would (with a notice on every run): the saved model then generates and pads as trained.
    The generation config keeps the stop tokens it had."""
    configs = [model.config]
    if getattr(model, "generation_config", None) is not None:
        configs.append(model.generation_config)
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        token_id = getattr(tokenizer, name)
        if token_id is None:
            continue
        for config in configs:
            current = getattr(config, name, None)
            if isinstance(current, list):
                if token_id not in current:
                    setattr(config, name, [token_id, *current])
            elif current != token_id:
                keep = config is not model.config and name == "eos_token_id" and current is not None
                setattr(config, name, [token_id, current] if keep else token_id)


def _wrap_with_lora(model, lora_args, mask_id, gradient_checkpointing):
    try:
        import peft
    except ImportError:
        raise UserError("--use_lora needs the peft package: pip install peft") from None
    targets = lora_args.lora_target_modules
    config = peft.LoraConfig(
        task_type="CAUSAL_LM",
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()],
        # the new [MASK] row is otherwise frozen at its initial mean value
        trainable_token_indices=[mask_id] if mask_id is not None else None,
    )
    if gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    model = peft.get_peft_model(model, config)
    model.print_trainable_parameters()
    return model


def _save(trainer, tokenizer, output_dir: Path, lora_args, training_args) -> None:
    if not lora_args.use_lora:
        trainer.save_model(str(output_dir))
    else:
        trainer.save_model(str(output_dir / "adapter"))
        if lora_args.lora_merge and trainer.is_world_process_zero():
            if training_args.fsdp:
                print("note: the LoRA adapter of an FSDP run is saved unmerged in", output_dir / "adapter")
            else:
                merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
                merged.save_pretrained(str(output_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(output_dir))


def _local_model_dir(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_dir():
        raise UserError(f"--model_name_or_path: no such local folder: {path} (nothing is downloaded)")
    if not (path / "config.json").is_file():
        raise UserError(f"--model_name_or_path: {path} has no config.json: not a Hugging Face model folder")
    return path


def _resolve_resume(resume: Optional[str], output_dir: Path) -> Optional[str]:
    """The checkpoint to resume from; refuses to train over a finished model or existing checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is None or str(resume).lower() == "false":
        if output_dir.is_dir():
            existing = [p.name for p in output_dir.iterdir()
                        if p.name in ("config.json", "model.safetensors", "adapter") or p.name.startswith("checkpoint-")]
            if existing:
                raise UserError(f"--output_dir {output_dir} already holds {', '.join(sorted(existing))}; "
                                "pass --resume_from_checkpoint true to continue, or choose a new --output_dir")
        return None
    if str(resume).lower() in ("true", "last"):
        last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if last is None:
            raise UserError(f"--resume_from_checkpoint {resume}: no checkpoint-* folder in {output_dir}")
        return last
    if not Path(resume).is_dir():
        raise UserError(f"--resume_from_checkpoint: no such checkpoint folder: {resume}")
    return str(resume)
