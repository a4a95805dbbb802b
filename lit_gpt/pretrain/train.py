"""MEAP pretraining: `plan_run` (check everything) -> `main` (model, optimizer, data, resume) -> `fit`
(the loop). From Python: `pretrain(PretrainArgs(...))`; from the shell: MEAP-Pretrain/pretrain.py."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch

from lit_gpt.errors import UserError
from lit_gpt.config import Config
from lit_gpt.io.hyperparameters import write_hyperparameters
from lit_gpt.meap import MEAPCollator
from lit_gpt.model import GPT, count_parameters, flops_per_token
from lit_gpt.data import MixedStream, PackedStream
from lit_gpt.pretrain import checkpoint as ckpt
from lit_gpt.pretrain.args import PretrainArgs, check_batch_layout, total_steps
from lit_gpt.data.batches import (TrainBatches, ValBatches, check_data_tokenizer, check_token_ids, find_val_stream,
                                  open_stream)
from lit_gpt.pretrain.metrics import (MetricsLog, Progress, Throughput, check_logger_available, format_count,
                                      format_duration, format_train_line, peak_tflops)
from lit_gpt.pretrain.parallel import (apply_activation_checkpointing, check_process_layout, copy_full_weights,
                                       fsdp_strategy, init_weights)
from lit_gpt.pretrain.schedule import get_lr, warmup_steps_for
from lit_gpt.pretrain.step import train_step
from lit_gpt.io.run_lock import RunDirLock, is_launching_process
from lit_gpt.tokenizer import TokenizerInfo, load_tokenizer, tokenizer_info


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the run stops without saving."""


@dataclass
class RunPlan:
    """Everything `setup` resolved and checked before any process starts training."""

    args: PretrainArgs
    config: Config
    tokenizer: TokenizerInfo
    accelerator: str
    devices: int
    precision: str
    world_size: int
    grad_accum: int
    total_steps: int
    warmup_steps: int
    resume_path: Optional[Path]
    train_stream: PackedStream | MixedStream  # a MixedStream when train_prefix mixes prefixes
    val_stream: Optional[PackedStream]

    @property
    def tokens_per_step(self) -> int:
        return self.args.global_batch_size * self.config.block_size


# ----------------------------------------------------------------------------- setup
def model_config(args: PretrainArgs, vocab_size: int) -> Config:
    overrides = dict(args.model_overrides)
    if args.block_size is not None:
        overrides["block_size"] = args.block_size
    if args.vocab_from_tokenizer:
        overrides["vocab_size"] = vocab_size
    try:
        return Config.from_name(args.model_name, **overrides)
    except (TypeError, ValueError) as err:
        raise UserError(f"--model_name {args.model_name} with --model_overrides {args.model_overrides}: {err}") from None


def _resolve_hardware(args: PretrainArgs) -> tuple[str, int, str]:
    cuda = torch.cuda.is_available()
    accelerator = {"auto": "cuda" if cuda else "cpu", "gpu": "cuda"}.get(args.accelerator, args.accelerator)
    if accelerator == "cuda" and not cuda:
        raise UserError("--accelerator cuda: no CUDA device is available")
    devices = args.devices
    if devices == -1:
        devices = torch.cuda.device_count() if accelerator == "cuda" else 1
    precision = args.precision or ("bf16-mixed" if accelerator == "cuda" else "32-true")
    if accelerator == "cpu" and precision == "16-mixed":
        raise UserError("--precision 16-mixed needs a GPU (use bf16-mixed or 32-true on CPU)")
    return accelerator, devices, precision


def _check_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out_dir {out_dir}: cannot create it: {err.strerror or err}") from None


def check_launcher(num_nodes: int, world_size: int) -> None:
    """Refuses --num_nodes N > 1 when nothing starts the other nodes' processes (it would wait at the
    rendezvous for ever): a SLURM job step, torchrun, or MASTER_ADDR and NODE_RANK set on each node."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env and int(env.get("WORLD_SIZE", world_size)) != world_size:
        raise UserError(f"--num_nodes {num_nodes} x --devices: {world_size} processes, but the launcher started "
                        f"{env['WORLD_SIZE']} (WORLD_SIZE)")
    if num_nodes == 1:
        return
    if not ("SLURM_NTASKS" in env or "TORCHELASTIC_RUN_ID" in env or ("MASTER_ADDR" in env and "NODE_RANK" in env)):
        raise UserError(
            f"--num_nodes {num_nodes}: no launcher starts the other nodes; run it in a SLURM job step (srun, "
            "scripts/slurm_pretrain.sbatch), with torchrun, or on each node with MASTER_ADDR, MASTER_PORT and NODE_RANK set"
        )


def plan_run(args: PretrainArgs) -> RunPlan:
    """Checks every input (tokenizer, data, out_dir, resume; the settings were checked when `args` was
    built) and resolves the run, before any process is launched: bad input stops it with one line."""
    check_logger_available(args.logger)
    accelerator, devices, precision = _resolve_hardware(args)
    check_launcher(args.num_nodes, devices * args.num_nodes)
    world_size, grad_accum = check_layout(args, accelerator, devices, precision)

    tokenizer = load_tokenizer(args.tokenizer_dir)
    info = tokenizer_info(tokenizer, args.tokenizer_dir)
    config = model_config(args, info.vocab_size)
    if info.vocab_size > config.padded_vocab_size or (info.mask_id or 0) >= config.padded_vocab_size:
        raise UserError(
            f"--tokenizer_dir {args.tokenizer_dir}: {info.vocab_size} tokens with [MASK] (id {info.mask_id}) do not fit "
            f"the model's vocabulary of {config.padded_vocab_size} ({config.name}); no room for [MASK] "
            "(set vocab_from_tokenizer or a larger vocab_size in model_overrides)"
        )
    if args.mask_ratio > 0 and info.mask_id is None:
        raise UserError(f"--tokenizer_dir {args.tokenizer_dir}: the tokenizer has no [MASK] token")

    T = config.block_size
    train_stream = open_stream(args.train_data_dir, args.train_prefix, T, args.seed, shuffle=True, wrap=True,
                               setting="train_data_dir")
    check_data_tokenizer(args.train_data_dir, tokenizer, "train_data_dir")
    # Only the launching process (global rank 0) checks token ids: without a manifest maximum it
    # scans every chunk, which the other ranks would repeat for nothing.
    check_ids = is_launching_process(world_size, args.out_dir)
    if check_ids:
        check_token_ids(args.train_data_dir, args.train_prefix, config.padded_vocab_size, "train_data_dir")
    val_stream = None
    if args.eval_iters > 0:
        val_stream = find_val_stream(args.val_data_dir, args.train_data_dir, args.val_prefix, T, args.seed)
        if val_stream is not None and args.val_data_dir is not None:
            check_data_tokenizer(args.val_data_dir, tokenizer, "val_data_dir")
        if val_stream is not None and check_ids:
            check_token_ids(args.val_data_dir or args.train_data_dir, args.val_prefix, config.padded_vocab_size,
                            "val_data_dir" if args.val_data_dir else "train_data_dir")

    steps = total_steps(args, T)
    out_dir = Path(args.out_dir)
    resume_path = ckpt.resolve_resume(args.resume, out_dir, config)
    if args.init_from and resume_path is None:
        ckpt.load_initial_weights(args.init_from, config)  # fails here, before launch, on a mismatch
    _check_out_dir(out_dir)
    return RunPlan(
        args=args, config=config, tokenizer=info, accelerator=accelerator, devices=devices, precision=precision,
        world_size=world_size, grad_accum=grad_accum, total_steps=steps,
        warmup_steps=warmup_steps_for(steps, args.warmup_fraction, args.warmup_steps),
        resume_path=resume_path, train_stream=train_stream, val_stream=val_stream,
    )


def _uses_fsdp(args: PretrainArgs, accelerator: str, world_size: int) -> bool:
    return args.strategy == "fsdp" or (args.strategy == "auto" and accelerator == "cuda" and world_size > 1)


def checkpoint_format(args: PretrainArgs, accelerator: str, world_size: int) -> tuple[str, bool]:
    """-> (format, asynchronous): sharded and asynchronous under FSDP unless set otherwise."""
    fsdp = _uses_fsdp(args, accelerator, world_size)
    fmt = args.checkpoint_format if args.checkpoint_format != "auto" else ("sharded" if fsdp else "full")
    return fmt, fmt == "sharded" if args.async_checkpoint is None else args.async_checkpoint


def check_layout(args: PretrainArgs, accelerator: str, devices: int, precision: str) -> tuple[int, int]:
    """-> (world size, accumulation steps) once processes, batch and FSDP settings fit (a run's and a plan's)."""
    world_size = devices * args.num_nodes
    check_process_layout(devices, args.num_nodes, args.fsdp_sharding)
    grad_accum = check_batch_layout(args, world_size)
    fmt, asynchronous = checkpoint_format(args, accelerator, world_size)
    if asynchronous and fmt != "sharded":
        raise UserError(f"--async_checkpoint: {fmt} checkpoints are gathered and written by one process; "
                        "asynchronous writing needs --checkpoint_format sharded (FSDP)")
    if not _uses_fsdp(args, accelerator, world_size):
        if fmt == "sharded":
            raise UserError("--checkpoint_format sharded needs FSDP (--strategy fsdp, or several GPUs)")
        return world_size, grad_accum
    if args.fsdp_sharding == "NO_SHARD":
        raise UserError("--fsdp_sharding NO_SHARD: FSDP2 has no unsharded mode; use --strategy ddp to replicate")
    if precision == "16-mixed":
        raise UserError("--precision 16-mixed is not supported with FSDP2 (--strategy fsdp): use bf16-mixed")
    if world_size == 1:
        # Not refused: the same code path and checkpoint formats as a sharded run, on one process.
        print(f"--strategy fsdp with one process: FSDP2 over a single process (nothing is sharded; "
              f"{fmt} checkpoints as with several)")
    return world_size, grad_accum


def build_fabric(plan: RunPlan):
    import lightning as L
    from lightning.fabric.strategies import DDPStrategy

    args = plan.args
    if plan.accelerator == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls for fp32 work, as TinyLlama
    if _uses_fsdp(args, plan.accelerator, plan.world_size):
        strategy: Any = fsdp_strategy(
            plan.devices, args.num_nodes, plan.precision, sharding=args.fsdp_sharding,
            activation_checkpointing=args.activation_checkpointing,
            checkpoint_format=checkpoint_format(args, plan.accelerator, plan.world_size)[0],
            init=partial(init_weights, config=plan.config),
        )
    elif args.strategy == "ddp" or plan.world_size > 1:
        strategy = DDPStrategy()
    else:
        strategy = "auto"
    return L.Fabric(accelerator=plan.accelerator, devices=plan.devices, num_nodes=args.num_nodes, strategy=strategy,
                    precision=plan.precision)


def pretrain(args: PretrainArgs) -> int:
    """Runs (or resumes) a pretraining run; -> the exit code. The launching process (not the ranks a launcher
    starts) holds out_dir's run lock for the whole run and writes out_dir/hyperparameters.yaml."""
    if args.dry_run:  # before the run lock and the hardware check: a plan writes and needs nothing
        from lit_gpt.pretrain.plan import print_plan

        return print_plan(args)
    _, devices, _ = _resolve_hardware(args)
    launcher = is_launching_process(devices * args.num_nodes, args.out_dir)
    with RunDirLock(args.out_dir, "--out_dir", enabled=launcher):
        plan = plan_run(args)
        if launcher:
            write_hyperparameters(args.out_dir, args.to_dict())
        fabric = build_fabric(plan)
        fabric.launch()
        return main(fabric, plan)


# ----------------------------------------------------------------------------- main
def build_model(fabric, plan: RunPlan) -> torch.nn.Module:
    """The set-up model: under FSDP built on the meta device and initialised shard by shard
    (`parallel.init_weights`: the same values as an unsharded model for the seed)."""
    args, config = plan.args, plan.config
    fsdp = _uses_fsdp(args, plan.accelerator, plan.world_size)
    fabric.seed_everything(args.seed, verbose=False)
    with fabric.init_module(empty_init=fsdp):
        model = GPT(config, fused=args.fused_kernels)
    init_from = args.init_from and plan.resume_path is None
    if init_from and not fsdp:
        model.load_state_dict(ckpt.load_initial_weights(args.init_from, config))
    if args.compile:
        from lit_gpt import compile as block_compile

        block_compile.compile_blocks(model)  # in place, before wrapping: parameter names stay the same
    if args.activation_checkpointing and not fsdp:
        apply_activation_checkpointing(model)  # with FSDP, `parallelize` applies it before sharding
    model = fabric.setup(model)
    if init_from and fsdp:
        copy_full_weights(model, ckpt.load_initial_weights(args.init_from, config))
    if init_from:
        fabric.print(f"initialised the weights from {args.init_from}")
    return model


def main(fabric, plan: RunPlan) -> int:
    args, config = plan.args, plan.config
    fabric.print(f"setup: building the model on {plan.world_size} x {plan.accelerator}")
    model = build_model(fabric, plan)
    optimizer = fabric.setup_optimizers(torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay, betas=(args.beta1, args.beta2),
        fused=fabric.device.type == "cuda"))
    collator = MEAPCollator(mask_ratio=args.mask_ratio, mask_token_id=plan.tokenizer.mask_id, seed=args.seed,
                            span=args.mask_span, scheme=args.mask_scheme)
    train = TrainBatches(plan.train_stream, collator, args.micro_batch_size, plan.grad_accum,
                         fabric.global_rank, fabric.world_size)
    val = None
    if plan.val_stream is not None:
        val = ValBatches(plan.val_stream, args.micro_batch_size, args.eval_iters, fabric.global_rank, fabric.world_size)
    elif args.eval_iters > 0:
        fabric.print(f"no {args.val_prefix}*.bin in {args.train_data_dir}: validation is skipped (set --val_data_dir)")

    start_step = start_tokens = 0
    if plan.resume_path is not None:
        fabric.print(f"setup: loading {plan.resume_path}")
        state = ckpt.load_checkpoint(fabric, plan.resume_path, model, optimizer)
        start_step, start_tokens = int(state["step"]), int(state["tokens"])
        train.load_state_dict(state["data"])
        rng = state.get("rng") or []
        if rng:
            ckpt.restore_rng(rng[min(fabric.global_rank, len(rng) - 1)])
        fabric.print(f"resumed from {plan.resume_path} at step {start_step}")

    n_params = count_parameters(config)  # the module's own count would be a shard's under FSDP
    fabric.print(
        f"{config.name}: {n_params / 1e6:.1f}M parameters, block {config.block_size}, vocab {config.padded_vocab_size} | "
        f"{plan.world_size} x {plan.accelerator} ({plan.precision}) | global batch {args.global_batch_size} = "
        f"{plan.world_size} x {args.micro_batch_size} x {plan.grad_accum} accumulation | {plan.total_steps} steps, "
        f"{format_count(plan.total_steps * plan.tokens_per_step)} tokens | mask_ratio {args.mask_ratio}"
        + (f", span {args.mask_span}" if args.mask_span > 1 else "")
    )
    return fit(fabric, plan, model, optimizer, train, val, start_step, start_tokens)


# ----------------------------------------------------------------------------- fit
class StopSignals:
    """Turns SIGTERM/SIGUSR1 (SLURM preemption, scancel, time limits) and a first Ctrl-C (SIGINT)
    into a request to save and stop; a second Ctrl-C aborts at once."""

    SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGUSR1", "SIGINT")) if s is not None)

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, Any] = {}
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            if self.received is not None:
                raise KeyboardInterrupt
            sys.stderr.write("\nCtrl-C: saving a checkpoint and stopping (press Ctrl-C again to abort without saving)\n")
        self.received = self.received or signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def sync_step_state(fabric, loss: torch.Tensor, grad_norm: Optional[torch.Tensor], nonfinite: torch.Tensor,
                    stop: bool) -> tuple[float, Optional[float], bool, bool]:
    """One all-reduce (sum) of [loss, norm, non-finite flag, stop flag] and one copy to the host; -> (loss mean
    over processes, grad norm, a NaN/inf since the last sync on any process, a stop signal on any process)."""
    norm = grad_norm if grad_norm is not None else torch.zeros((), device=loss.device)
    if not fabric.is_global_zero:
        norm = torch.zeros_like(norm)  # the same on every process: rank 0's value alone is summed
    packed = torch.stack([loss.float(), norm.float(), nonfinite.float(),
                          torch.tensor(float(stop), device=loss.device)])
    if fabric.world_size > 1:
        packed = fabric.all_reduce(packed, reduce_op="sum")
    total, norm_value, bad, stops = packed.tolist()
    return total / fabric.world_size, norm_value if grad_norm is not None else None, bad > 0, stops > 0


def to_device(fabric, tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    # Pinned by the prefetch thread on a GPU, so the copy is asynchronous.
    return tuple(t.to(fabric.device, non_blocking=fabric.device.type == "cuda") for t in tensors)


@torch.no_grad()
def validate(fabric, model: torch.nn.Module, val: ValBatches) -> float:
    """Mean loss on unmasked validation batches, averaged over processes."""
    model.eval()
    total = torch.zeros((), device=fabric.device)
    for batch in val:
        inputs, targets = to_device(fabric, batch)
        total += model(inputs, targets=targets).float()
    model.train()
    return float(fabric.all_reduce(total / max(len(val), 1), reduce_op="mean").item())


@dataclass
class LoopState:
    """The loop's state between steps: everything `fit`'s helpers read or change."""

    step: int
    start_step: int
    start_tokens: int
    end_step: int
    tokens_per_step: int
    last_saved: Optional[Path]
    nonfinite: torch.Tensor  # device flag: a non-finite loss or norm since the last sync
    val_loss: Optional[float] = None

    def tokens(self) -> int:
        # Counted from the checkpoint, so a resume with another global batch size stays exact.
        return self.start_tokens + (self.step - self.start_step) * self.tokens_per_step


def set_lr(optimizer, plan: RunPlan, step: int) -> float:
    args = plan.args
    lr = get_lr(step, max_lr=args.learning_rate, min_lr=args.min_lr, warmup_steps=plan.warmup_steps,
                total_steps=plan.total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def step_events(plan: RunPlan, state: LoopState, has_val: bool) -> tuple[bool, bool, bool]:
    """-> (log, validate, save) after state.step; the first step of an invocation is reported at once."""
    args, step = plan.args, state.step
    last = step == state.end_step
    log = step % args.log_interval == 0 or last or step == state.start_step + 1
    validate_now = has_val and (step % args.eval_interval == 0 or step == plan.total_steps)
    save = step % args.save_interval == 0 or last
    return log, validate_now, save


def raise_if_diverged(state: LoopState, nonfinite: bool) -> None:
    if nonfinite:
        where = f"; the last good checkpoint is {state.last_saved}" if state.last_saved else "; no checkpoint was saved"
        raise TrainingDiverged(
            f"the training loss or gradient norm became NaN/inf by step {state.step}: stopping{where} "
            "(lower --learning_rate or raise --warmup_fraction, then --resume it)"
        )


def log_train(plan: RunPlan, state: LoopState, loss: float, grad_norm: Optional[float], lr: float,
              throughput: Throughput, log, progress, started: float, mask_fraction: Optional[float]) -> None:
    tokens_per_sec, mfu, sec_per_step = throughput.update(state.step, state.tokens())
    row = {
        "step": state.step, "tokens": state.tokens(), "loss": loss, "lr": lr, "grad_norm": grad_norm,
        "tokens_per_sec": round(tokens_per_sec, 1), "mfu": round(mfu, 4) if mfu is not None else None,
        "elapsed_s": round(time.perf_counter() - started, 3), "mask_fraction": mask_fraction,
    }
    if log is not None and (state.step % plan.args.log_interval == 0 or state.step == state.end_step):
        log.log(row)
    line = format_train_line(row, plan.total_steps, (plan.total_steps - state.step) * sec_per_step)
    if state.step == state.start_step + 1:
        line += f" | first step {time.perf_counter() - started:.1f}s"
    progress.report(line, postfix={"loss": f"{loss:.4f}", "tok/s": f"{tokens_per_sec:.0f}"})


def run_validation(fabric, plan: RunPlan, state: LoopState, model, val: ValBatches, log, progress,
                   started: float) -> None:
    state.val_loss = validate(fabric, model, val)
    ppl = math.exp(min(state.val_loss, 80.0))
    if log is not None:
        log.log({"step": state.step, "tokens": state.tokens(), "val_loss": state.val_loss, "val_ppl": ppl,
                 "elapsed_s": round(time.perf_counter() - started, 3)})
    progress.report(f"step {state.step}: val loss {state.val_loss:.4f}, val ppl {ppl:.2f}")


def save(fabric, plan: RunPlan, state: LoopState, model, optimizer, train: TrainBatches, checkpointer,
         final: bool) -> list[Path]:
    """Starts the checkpoint of this step; -> the checkpoints complete now (an asynchronous one completes
    at the next save, or here when `final`): only those count as saved and are pruned against."""
    args = plan.args
    out_dir = Path(args.out_dir)
    path = ckpt.checkpoint_path(out_dir, state.step)
    contents = {
        "model": model, "optimizer": optimizer, "step": state.step, "tokens": state.tokens(),
        "data": train.state_dict(state.step), "rng": ckpt.gather_rng(fabric), "config": plan.config.to_dict(),
        "tokenizer_dir": str(Path(args.tokenizer_dir).expanduser().resolve()), "tokenizer": plan.tokenizer.to_dict(),
        "mask_id": plan.tokenizer.mask_id, "eos_id": plan.tokenizer.eos_id, "args": args.to_dict(),
        "format_version": ckpt.FORMAT_VERSION,
    }
    done = checkpointer.save(path, contents, wait=final)
    if done and fabric.is_global_zero:
        ckpt.prune_checkpoints(out_dir, args.keep_last, done[-1])
    state.last_saved = done[-1] if done else state.last_saved
    return done


def fit(fabric, plan: RunPlan, model, optimizer, train: TrainBatches, val: Optional[ValBatches], start_step: int = 0,
        start_tokens: int = 0) -> int:
    """The training loop. Between log, validation and save steps nothing waits for the device:
    at those steps one packed all-reduce brings loss, norm, non-finite and stop flags to the host."""
    args = plan.args
    out_dir = Path(args.out_dir)
    end_step = min(plan.total_steps, args.stop_step) if args.stop_step else plan.total_steps
    state = LoopState(start_step, start_step, start_tokens, end_step, plan.tokens_per_step, plan.resume_path,
                      torch.zeros((), device=fabric.device))
    log = MetricsLog(out_dir, args.logger, resume_step=start_step if plan.resume_path else None,
                     run_name=args.run_name or out_dir.name, config=args.to_dict(),
                     project=args.wandb_project) if fabric.is_global_zero else None
    device_name = torch.cuda.get_device_name(fabric.device) if fabric.device.type == "cuda" else "cpu"
    throughput = Throughput(flops_per_token(plan.config, plan.config.block_size), fabric.world_size,
                            peak_tflops(device_name, plan.precision, args.peak_tflops))
    progress = Progress(plan.total_steps, start_step, enabled=fabric.is_global_zero)
    signals = StopSignals()
    fmt, asynchronous = checkpoint_format(args, plan.accelerator, plan.world_size)
    checkpointer = ckpt.Checkpointer(fabric, sharded_format=fmt == "sharded", asynchronous=asynchronous)
    started = time.perf_counter()
    throughput.reset(state.step, state.tokens())
    exit_code = 0
    # The next step's batches are read, masked, stacked and pinned in a background thread while this one runs.
    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meap-data")
    pin = fabric.device.type == "cuda"
    upcoming = prefetch.submit(train.step_tensors, state.step, pin) if state.step < end_step else None
    try:
        if state.step >= plan.total_steps:
            fabric.print(f"nothing to do: the run already reached its last step {plan.total_steps}")
        while state.step < end_step:
            lr = set_lr(optimizer, plan, state.step)
            inputs, targets = to_device(fabric, upcoming.result())
            if state.step + 1 < end_step:
                upcoming = prefetch.submit(train.step_tensors, state.step + 1, pin)
            result = train_step(fabric, model, optimizer, list(zip(inputs.unbind(0), targets.unbind(0))),
                                args.grad_clip)
            state.step += 1
            progress.bar.update()
            bad = ~torch.isfinite(result.loss)
            if result.grad_norm is not None:
                bad = bad | ~torch.isfinite(result.grad_norm)
            state.nonfinite = torch.maximum(state.nonfinite, bad.float())

            log_now, validate_now, save_now = step_events(plan, state, val is not None and len(val) > 0)
            stop = signals.received is not None
            if not (log_now or validate_now or save_now or (stop and fabric.world_size == 1)):
                continue  # no host sync, no collective
            loss, grad_norm, diverged, stop = sync_step_state(fabric, result.loss, result.grad_norm, state.nonfinite,
                                                              stop)
            raise_if_diverged(state, diverged or not math.isfinite(loss))
            if log_now:
                log_train(plan, state, loss, grad_norm, lr, throughput, log, progress, started,
                          train.mask_fraction(state.step))
            if validate_now:
                run_validation(fabric, plan, state, model, val, log, progress, started)
                throughput.reset(state.step, state.tokens())  # validation time is not training throughput
            if save_now or stop:
                final = stop or state.step == end_step
                for done in save(fabric, plan, state, model, optimizer, train, checkpointer, final):
                    progress.report(f"saved {done}")
                throughput.reset(state.step, state.tokens())
            if stop:
                sig = signals.received or signal.SIGTERM
                fabric.print(f"stopped by signal {signal.Signals(sig).name} after step {state.step}; "
                             f"checkpoint {state.last_saved}; continue with --resume auto")
                exit_code = 128 + int(sig)
                break
    finally:
        prefetch.shutdown(wait=True, cancel_futures=True)
        signals.restore()
        progress.bar.close()
        if log is not None:
            log.close()

    if exit_code == 0 and state.step > start_step:
        verb = "done" if state.step >= plan.total_steps else "paused (--stop_step; continue with --resume auto)"
        summary = (f"{verb}: step {state.step}/{plan.total_steps}, {format_count(state.tokens())} tokens in "
                   f"{format_duration(time.perf_counter() - started)}")
        if state.val_loss is not None:
            summary += f" | final val loss {state.val_loss:.4f} (ppl {math.exp(min(state.val_loss, 80.0)):.2f})"
        summary += f" | checkpoint {state.last_saved} | metrics {out_dir / 'metrics.csv'}"
        fabric.print(summary)
    return exit_code
