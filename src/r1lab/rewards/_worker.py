"""A reward pool worker process, started by r1lab.rewards.pool (which runs `main()` here).

Reads length-prefixed pickled requests on stdin, scores each part in its main thread (so
math-verify's SIGALRM timeouts work) and writes one message per finished part on its protocol
pipe, so the pool knows which part is running if it has to kill this process.

Requests:  ("item", index, composite, part names, completion, example)
Replies:   ("ready", pid) once; per part ("part", index, name, score, info, seconds, error),
           where error is None or why the part failed and scored 0; then ("done", index).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import time
from typing import Any, BinaryIO

HEADER = struct.Struct("!I")


def read_message(stream: BinaryIO) -> Any | None:
    """One framed message, or None at end of stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


def frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def _die_with_parent(parent: int) -> None:
    """SIGKILL this worker when the pool's process dies (Linux), even mid-way through a hang."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: stdin's EOF still ends an idle worker
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main(parent: int | None = None) -> int:
    # Ctrl-C belongs to the parent, which kills us when it needs to.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _die_with_parent(parent)
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so a reward (or a
    # library) that prints cannot corrupt a frame.
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer

    import r1lab.rewards  # noqa: F401 - registers the built-in rewards

    def send(message: Any) -> None:
        proto.write(frame(message))
        proto.flush()

    send(("ready", os.getpid()))
    while True:
        msg = read_message(requests)
        if msg is None:
            return 0
        _, index, composite, names, completion, example = msg
        for name in names:
            start = time.perf_counter()
            score, info, error = composite.part(name, completion, example)  # never raises
            seconds = time.perf_counter() - start
            try:
                reply = frame(("part", index, name, score, info, seconds, error))
            except Exception as e:  # noqa: BLE001 - an info dict that does not pickle
                why = f"its info could not be sent back: {type(e).__name__}: {e}"[:300]
                reply = frame(("part", index, name, 0.0, {}, seconds, why))
            proto.write(reply)
            proto.flush()
        send(("done", index))


if __name__ == "__main__":
    sys.exit(main())
