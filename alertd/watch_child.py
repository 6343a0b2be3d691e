"""The child of `alertd watch`: spawn it, pass its output through byte for byte, signal it.

The child runs in its own process group, so a stop reaches every process of the run (torchrun's
workers, DataLoader workers) and a Ctrl-C in the terminal reaches it once, forwarded by us, not
twice. Its stdout and stderr are pipes read by one thread each: every read is written at once to
our own stdout/stderr (and the tee file) unchanged, then queued for the evaluator as
(stream, bytes); b"" marks the end of a stream.
"""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from typing import BinaryIO

STREAMS = ("stdout", "stderr")
LAST_LINES = 20


def _write_all(fd: int, data: bytes) -> bool:
    """Write every byte to fd; False once the reader has gone (a closed pipe)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except (BrokenPipeError, OSError):
        return False
    return True


class Child:
    """A command run with its output passed through and queued; signals go to its process group.

        child = Child(["python", "train.py"], tee="train.log")
        stream, data = child.output.get()     # ("stdout", b"step 1 | loss 2.3\\n")
        child.signal(signal.SIGINT)
    """

    def __init__(self, argv: list[str], tee: str | None = None, out_fds: tuple[int, int] = (1, 2),
                 env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        env.setdefault("PYTHONUNBUFFERED", "1")  # a Python child's prints then arrive as they happen
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                     env=env, process_group=0)
        self.output: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._tee: BinaryIO | None = open(tee, "wb") if tee else None
        self._tee_lock = threading.Lock()
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self._partial = {s: "" for s in STREAMS}
        self._threads = [threading.Thread(target=self._pump, args=(name, pipe, fd), daemon=True,
                                          name=f"alertd-watch-{name}")
                         for name, pipe, fd in zip(STREAMS, (self.proc.stdout, self.proc.stderr), out_fds)]
        for t in self._threads:
            t.start()

    def _pump(self, name: str, pipe, out_fd: int) -> None:
        fd, passing = pipe.fileno(), True
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self.output.put((name, b""))
                return
            # Keep reading even if our own reader went away: a child blocked on a full pipe never ends.
            passing = passing and _write_all(out_fd, data)
            with self._tee_lock:
                if self._tee is not None:
                    self._tee.write(data)
                    self._tee.flush()
            self.output.put((name, data))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit status once the child has ended (negative: killed by that signal), else None."""
        return self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send sig to the child's process group (nothing if it is gone)."""
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def remember(self, stream: str, text: str) -> None:
        """Keep the last lines the child printed (a tqdm line counts once, as last shown)."""
        parts = text.split("\n")
        for i, part in enumerate(parts):
            shown = [s for s in part.split("\r") if s.strip()]
            if shown:
                self._partial[stream] = shown[-1]
            if i < len(parts) - 1:
                self.last_lines.append(self._partial[stream])
                self._partial[stream] = ""

    def tail(self) -> list[str]:
        """The last lines printed, unfinished ones included."""
        return list(self.last_lines) + [p for p in self._partial.values() if p.strip()]

    def close(self, timeout: float = 2.0) -> None:
        """Wait briefly for the pumps (a grandchild may hold a pipe open) and close the tee file."""
        for t in self._threads:
            t.join(timeout=timeout)
        with self._tee_lock:
            if self._tee is not None:
                self._tee.close()
                self._tee = None


class Stopper:
    """SIGINT, then SIGTERM after `grace` seconds, then SIGKILL after another `grace`.

    `now` is an argument, so the escalation is a function of time that tests can step.
    """

    SEQUENCE = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)

    def __init__(self, child: Child, grace: float) -> None:
        self.child, self.grace = child, grace
        self.stage = 0            # signals sent so far
        self.next_at: float | None = None
        self.reason = ""

    def stop(self, reason: str, now: float | None = None) -> bool:
        """Start stopping (once); True if this call started it."""
        if self.stage:
            return False
        self.reason = reason
        self._send(time.monotonic() if now is None else now)
        return True

    def tick(self, now: float | None = None) -> int | None:
        """Escalate if the grace period is over and the child still runs; returns the signal sent."""
        now = time.monotonic() if now is None else now
        if not self.stage or self.stage >= len(self.SEQUENCE) or self.child.poll() is not None:
            return None
        if now >= self.next_at:
            return self._send(now)
        return None

    def _send(self, now: float) -> int:
        sig = self.SEQUENCE[self.stage]
        self.child.signal(sig)
        self.stage += 1
        self.next_at = now + self.grace
        return sig
