"""The worker processes of a prepare run, their progress and warnings, and their end with the main process."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Optional

from lit_gpt.prepare.sources import PrepareError

_worker: dict = {}  # this process's encoder and event queue (in-process: the Monitor), set by init_worker


def init_worker(encoder, events, parent_pid: Optional[int] = None) -> None:
    """Readies this process for tasks; `parent_pid` is given in the pool's worker processes."""
    if parent_pid is not None:  # the processes are the parallelism; tokenizer threads on top only contend
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        _exit_with_parent(parent_pid)
    encoder.set_threads(1 if parent_pid is not None else (os.cpu_count() or 1))
    _worker.update(encoder=encoder, events=events)


def worker_encoder():
    return _worker["encoder"]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _exit_with_parent(parent_pid: int) -> None:
    """Ends this worker when the main process dies (killed, it cannot shut the pool down): a
    worker left behind would hold a core and keep writing into the destination."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # the kernel signals this process when its parent exits
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent_pid:  # the parent died before that was set up
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _watch_parent(parent_pid: int) -> None:
    """The portable backstop: once orphaned, a process is re-parented, so its parent id changes."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def emit(kind: str, *payload) -> None:
    _worker["events"].put((kind, *payload))


def run_tasks(tasks: Iterable, work: Callable, on_result: Callable, encoder, workers: int, monitor) -> list[str]:
    """`on_result(work(task))` for each task; returns the messages of the tasks that failed with a PrepareError."""
    failures: list[str] = []

    def settle(get, *args) -> None:
        try:
            on_result(get(*args))
        except PrepareError as err:
            failures.append(str(err))

    try:
        if workers == 1:
            # In-process: one source at a time, the tokenizer's own threads are the parallelism.
            init_worker(encoder, monitor)
            for task in tasks:
                settle(work, task)
            return failures
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        events = context.Queue()
        with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                                 initargs=(encoder, events, os.getpid())) as pool:
            pending = {pool.submit(work, task) for task in tasks}
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    monitor.drain(events)
                    for future in done:
                        settle(future.result)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        monitor.drain(events)
        return failures
    finally:
        _worker.clear()


class Monitor:
    """Turns the workers' events into progress-bar updates and warning lines."""

    def __init__(self, total_bytes: int, progress: Optional[bool], log):
        from tqdm import tqdm

        self.log = log  # `progress` None: a bar on a terminal only (tqdm's disable=None)
        self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="source read", dynamic_ncols=True,
                        disable=None if progress is None else not progress)
        self.documents = self.tokens = 0
        self.started = time.perf_counter()

    def drain(self, events) -> None:
        while True:
            try:
                self.put(events.get_nowait())
            except queue.Empty:
                return

    def put(self, event: tuple) -> None:  # the in-process run hands events over directly
        kind, *payload = event
        if kind == "warning":
            (self.log if self.bar.disable else self.bar.write)(f"warning: {payload[0]}")
            return
        nbytes, documents, tokens = payload
        self.documents += documents
        self.tokens += tokens
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{self.documents / elapsed:,.0f} docs/s, {self.tokens / elapsed:,.0f} tokens/s",
                                 refresh=False)
        self.bar.update(nbytes)

    def close(self) -> None:
        self.bar.close()
