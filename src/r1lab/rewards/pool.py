"""Score completions in persistent worker processes, with a hard time limit per reward call.

    with RewardPool(workers=2, timeout=10.0) as pool:
        results = pool.score(composite, completions, examples)   # list[RewardResult], in order

Why processes: rewards are CPU-bound Python (sympy, the sandbox's bookkeeping), and some inputs
make math-verify spin in C code that no signal interrupts (`9^{9^{9}}`). A worker is a fresh
interpreter (`r1lab.rewards._worker` in a new `python`: spawned, never forked from a process that may have
torch threads) that imports the reward modules once and stays up. Each part of each item (one
reward on one completion) must finish within `timeout` seconds; a worker that overruns is killed
and replaced, that part scores 0 with `info["timeout"] = True`, the item's remaining parts go to
another worker, and the batch continues. A worker that dies (segfault, OOM kill) is handled the
same way, with the part listed in `info["crashed"]`.

Every part runs under a guard (`CompositeReward.part`), in a worker or in this process alike:
a reward that raises, or returns anything but a finite number (NaN, None, a string, a bool),
scores 0 on that item, is named in the item's `info["errors"]` and logged as a warning (reward,
item, error, the start of the completion), and the batch goes on. One hostile completion (a
2^2^...^2 tower that overflows sympy's stack, say) must never stop a training run, and a NaN
must not poison its group's advantages. Only a reward that fails on every item it scored in
the batch, and on at least MIN_SYSTEMIC of them, is judged broken (a bug or missing reference
data, not bad input): score() then raises RewardError naming the reward and the first item. A
batch of one that fails is not called broken: one failure cannot tell a bug from a bad
completion, and stopping is the very abort the guard exists to prevent.

`workers=0` scores in this process, in order, with no hard limit: the math reward's guards and
math-verify's own timeouts (main thread only) still keep hostile answers from hanging it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from r1lab.rewards._worker import HEADER, frame
from r1lab.rewards.composite import CompositeReward, RewardError, RewardResult

DEFAULT_TIMEOUT = 10.0
# Items in flight per worker: the running one and one queued behind it, if its request fits
# in a pipe's buffer (64 KiB on Linux) with room to spare.
PIPELINE = 2
QUEUED_MAX_BYTES = 32 << 10
# Consecutive worker start failures before the pool gives up (a broken install, not bad luck).
MAX_START_FAILURES = 3
# A reward that fails on every item it scored, and on at least this many, is broken (see above).
MIN_SYSTEMIC = 2
# Warning lines per batch for failed parts; the rest are counted in one more line.
MAX_WARNINGS = 10

log = logging.getLogger(__name__)


@dataclass
class _Task:
    """The parts of one item still to score; `position` is the part running now."""

    index: int
    names: list[str]
    position: int = 0

    @property
    def current(self) -> str:
        return self.names[self.position]

    @property
    def done(self) -> bool:
        return self.position == len(self.names)


class _Batch:
    """Scores collected so far for one score() call, and the work still queued."""

    def __init__(self, composites, completions, examples, progress):
        self.composites = composites
        self.completions = completions
        self.examples = examples
        self.progress = progress
        n = len(completions)
        self.parts: list[dict[str, float]] = [{} for _ in range(n)]
        self.details: list[dict[str, dict]] = [{} for _ in range(n)]
        self.seconds: list[dict[str, float]] = [{} for _ in range(n)]
        self.failed: list[dict[str, list[str]]] = [
            {"timed_out": [], "crashed": []} for _ in range(n)
        ]
        self.errors: list[dict[str, str]] = [{} for _ in range(n)]
        self.queue = collections.deque(_Task(i, composites[i].names) for i in range(n))
        self.left = n

    def finish_part(
        self,
        task: _Task,
        score: float,
        info: dict | None,
        seconds: float,
        error: str | None = None,
    ) -> None:
        i, name = task.index, task.current
        self.parts[i][name] = score
        self.seconds[i][name] = seconds
        if info:
            self.details[i][name] = info
        if error is not None:
            self.errors[i][name] = error
        task.position += 1
        if task.done:
            self.left -= 1
            if self.progress:
                self.progress(1)

    def kill_part(self, task: _Task, why: str, seconds: float) -> None:
        """The running part scores 0 (`why`: timed_out or crashed); the rest go back in line."""
        self.failed[task.index][why].append(task.current)
        self.finish_part(task, 0.0, None, seconds)
        if not task.done:
            self.queue.appendleft(task)

    def results(self) -> list[RewardResult]:
        return [
            c.result(
                self.parts[i],
                self.details[i],
                self.failed[i]["timed_out"],
                self.failed[i]["crashed"],
                self.seconds[i],
                self.errors[i],
            )
            for i, c in enumerate(self.composites)
        ]


@dataclass
class _Worker:
    proc: subprocess.Popen
    buf: bytearray = field(default_factory=bytearray)
    ready: bool = False
    tasks: collections.deque[_Task] = field(default_factory=collections.deque)
    """Items sent to this worker, oldest (the one running) first."""
    part_start: float = 0.0
    deadline: float = float("inf")

    @property
    def task(self) -> _Task | None:
        """The item running now."""
        return self.tasks[0] if self.tasks else None

    @property
    def fd(self) -> int:
        return self.proc.stdout.fileno()  # type: ignore[union-attr]


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            stream.close()  # type: ignore[union-attr]


def _kill_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _kill(proc)


class RewardPool:
    """Persistent reward workers; see the module docstring. Use as a context manager.

    One score() at a time: the pool is not meant to be shared between threads.
    """

    def __init__(self, workers: int = 2, timeout: float = DEFAULT_TIMEOUT):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.workers = workers
        self.timeout = timeout
        self._pool: list[_Worker] = []
        self._procs: list[subprocess.Popen] = []
        self._start_failures = 0
        self.restarts = 0
        """Workers replaced after a timeout or crash, over the pool's life."""
        # Kill the workers even if the caller forgets close() (or the interpreter exits).
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> RewardPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers (score() does it too); they import the rewards while you wait."""
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())

    def close(self) -> None:
        """Stop every worker."""
        for w in self._pool:
            _kill(w.proc)
        self._pool.clear()
        self._procs.clear()

    def _spawn(self) -> _Worker:
        env = dict(os.environ)
        # The worker must import the same r1lab (and user reward modules) as this process.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = subprocess.Popen(
            # `-c`, not `-m`: the package imports this module, and runpy warns about re-running it.
            [
                sys.executable,
                "-c",
                f"import sys, r1lab.rewards._worker as w; sys.exit(w.main({os.getpid()}))",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._procs.append(proc)
        return _Worker(proc)

    def _replace(self, w: _Worker) -> _Worker:
        _kill(w.proc)
        if w.proc in self._procs:
            self._procs.remove(w.proc)
        fresh = self._spawn()
        self._pool[self._pool.index(w)] = fresh
        return fresh

    # -- scoring -------------------------------------------------------------------------------

    def score(
        self,
        composite: CompositeReward | Sequence[CompositeReward],
        completions: Sequence[str],
        examples: Sequence[Mapping[str, Any]],
        progress: Callable[[int], None] | None = None,
    ) -> list[RewardResult]:
        """Score every (completion, example) pair; results in input order.

        `composite` is one CompositeReward for all items, or one per item (a batch mixing
        tasks). `progress(k)` is called as items finish, with the number just finished. A part
        that fails scores 0 and is logged (module docstring); RewardError only for a reward
        that failed on every item it scored.
        """
        if len(completions) != len(examples):
            raise ValueError(
                f"{len(completions)} completions but {len(examples)} examples: they must pair up"
            )
        if isinstance(composite, CompositeReward):
            composites = [composite] * len(completions)
        else:
            composites = list(composite)
            if len(composites) != len(completions):
                raise ValueError(
                    f"{len(composites)} composites for {len(completions)} completions: give one "
                    "CompositeReward, or one per completion"
                )
        if self.workers == 0:
            results = self._score_here(composites, completions, examples, progress)
        else:
            results = self._score_in_workers(composites, completions, examples, progress)
        _check_errors(results, completions)
        return results

    def _score_in_workers(self, composites, completions, examples, progress) -> list[RewardResult]:
        if any("__main__" in c.modules for c in composites):
            raise ValueError(
                "a reward defined in __main__ cannot run in worker processes; define it in an "
                "importable module, or use workers=0"
            )
        self.start()
        batch = _Batch(composites, completions, examples, progress)
        try:
            self._run(batch)
        except BaseException:
            # Interrupted or failed mid-batch: workers may hold stale work, start afresh.
            self.close()
            raise
        return batch.results()

    def _score_here(self, composites, completions, examples, progress) -> list[RewardResult]:
        results = []
        for composite, c, e in zip(composites, completions, examples, strict=True):
            results.append(composite.score(c, e))
            if progress:
                progress(1)
        return results

    def _run(self, batch: _Batch) -> None:
        """Hand out items, collect parts, kill overrunning workers, until the batch is done."""
        sel = selectors.DefaultSelector()
        try:
            while batch.left > 0:
                for w in self._pool:
                    # One item queued behind the running one: the worker starts it without
                    # waiting for a round trip through this process (matters for ~1 ms items).
                    while w.ready and len(w.tasks) < PIPELINE and batch.queue:
                        if not self._dispatch(w, batch):
                            break
                for key in list(sel.get_map().values()):
                    sel.unregister(key.fileobj)
                for w in self._pool:
                    sel.register(w.fd, selectors.EVENT_READ, w)
                now = time.monotonic()
                wait = min((w.deadline for w in self._pool), default=now + 1) - now
                for key, _ in sel.select(max(0.0, min(wait, 1.0))):
                    w = key.data
                    if w in self._pool:  # not replaced while handling an earlier event
                        self._receive(w, batch)
                now = time.monotonic()
                for w in list(self._pool):
                    if w.task is not None and now >= w.deadline:
                        self._fail(w, batch, "timed_out", now - w.part_start)
        finally:
            sel.close()

    def _dispatch(self, w: _Worker, batch: _Batch) -> bool:
        """Send the next queued item to `w`; False if it must wait until `w` is idle."""
        task = batch.queue[0]
        request = frame(
            (
                "item",
                task.index,
                batch.composites[task.index],
                task.names[task.position :],
                batch.completions[task.index],
                batch.examples[task.index],
            )
        )
        if w.tasks and len(request) > QUEUED_MAX_BYTES:
            # A busy worker does not read: a frame larger than the pipe's buffer would block
            # this process, and with it every time limit, until the running item ends.
            return False
        batch.queue.popleft()
        if not w.tasks:  # it starts now; a queued item's clock starts when the one before ends
            w.part_start = time.monotonic()
            w.deadline = w.part_start + self.timeout
        w.tasks.append(task)
        try:
            w.proc.stdin.write(request)  # type: ignore[union-attr]
            w.proc.stdin.flush()  # type: ignore[union-attr]
        except OSError:
            pass  # a dead worker: its EOF shows up in _receive and is handled as a crash
        return True

    def _receive(self, w: _Worker, batch: _Batch) -> None:
        chunk = os.read(w.fd, 1 << 20)
        if not chunk:
            self._on_eof(w)
            self._fail(w, batch, "crashed", time.monotonic() - w.part_start)
            return
        w.buf += chunk
        for msg in _messages(w.buf):
            if msg[0] == "ready":
                w.ready = True
                self._start_failures = 0
            elif msg[0] == "part" and w.task is not None:
                _, _, _, score, info, seconds, error = msg
                batch.finish_part(w.task, score, info, seconds, error)
                w.part_start = time.monotonic()
                w.deadline = w.part_start + self.timeout
                if w.task.done:
                    w.tasks.popleft()
                if not w.tasks:
                    w.deadline = float("inf")
            # "done" needs nothing: the last part already freed the worker.

    def _fail(self, w: _Worker, batch: _Batch, why: str, seconds: float) -> None:
        """Replace a worker that overran or died (`why`: timed_out or crashed).

        The running part scores 0; the rest of its item and the items queued behind it go
        back to the front of the line for other workers.
        """
        running = w.task
        for task in reversed(list(w.tasks)[1:]):
            batch.queue.appendleft(task)
        if running is not None:
            batch.kill_part(running, why, seconds)
        w.tasks.clear()
        self.restarts += 1
        self._replace(w)

    def _on_eof(self, w: _Worker) -> None:
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                raise RuntimeError(
                    "reward workers exit before they are ready (see their stderr above); "
                    f"({sys.executable} importing r1lab.rewards._worker)"
                )


def _check_errors(results: Sequence[RewardResult], completions: Sequence[str]) -> None:
    """Raise RewardError for a reward that failed on every item it scored (at least
    MIN_SYSTEMIC of them); otherwise log each failed part, up to MAX_WARNINGS lines."""
    failed: dict[str, list[int]] = {}
    scored: collections.Counter[str] = collections.Counter()
    for i, r in enumerate(results):
        lost = set(r.info["timed_out"]) | set(r.info["crashed"])  # neither failed nor scored
        for name in r.parts:
            if name in r.info["errors"]:
                failed.setdefault(name, []).append(i)
            elif name not in lost:
                scored[name] += 1
    for name, items in failed.items():
        if len(items) >= MIN_SYSTEMIC and scored[name] == 0:
            first = items[0]
            raise RewardError(
                name,
                f"{results[first].info['errors'][name]} (it failed on all {len(items)} items it "
                "scored in this batch: a bug in the reward or its reference data, not a bad "
                "completion)",
                first,
            )
    shown = 0
    for i, r in enumerate(results):
        for name, error in r.info["errors"].items():
            if shown < MAX_WARNINGS:
                log.warning(
                    "reward '%s' failed on item %d and scored 0 (%s); completion: %s",
                    name,
                    i,
                    error,
                    _snippet(completions[i]),
                )
            shown += 1
    if shown > MAX_WARNINGS:
        log.warning(
            "%d more reward failures in this batch scored 0 (each result's info['errors'])",
            shown - MAX_WARNINGS,
        )


def _snippet(text: str, head: int = 120, tail: int = 40) -> str:
    if len(text) <= head + tail + 5:
        return repr(text)
    return f"{text[:head]!r} ... {text[-tail:]!r} ({len(text)} chars)"


def _messages(buf: bytearray) -> list[Any]:
    """Pop every complete frame off the front of `buf`."""
    import pickle

    out = []
    while len(buf) >= HEADER.size:
        (size,) = HEADER.unpack_from(buf)
        if len(buf) < HEADER.size + size:
            break
        out.append(pickle.loads(bytes(buf[HEADER.size : HEADER.size + size])))
        del buf[: HEADER.size + size]
    return out


def score_batch(
    composite: CompositeReward,
    completions: Sequence[str],
    examples: Sequence[Mapping[str, Any]],
    workers: int = 2,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[RewardResult]:
    """Score a batch in a short-lived pool (a trainer should keep one RewardPool open instead)."""
    with RewardPool(workers=workers, timeout=timeout) as pool:
        return pool.score(composite, completions, examples)
