"""Shared test fixtures: fail any test that leaves a thread running (after watchdog's conftest)."""
from __future__ import annotations

import os
import threading

import pytest

# The probe's tests train on this torch device: "cuda" runs them on a GPU (torch's default device
# for the test, and the device of the scripts they run); CI has none and runs them on the CPU.
TORCH_DEVICE = os.environ.get("ALERTD_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def no_thread_leaks():
    """Fail the test if it started a thread that is still alive when it ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before]
    for t in leaked:
        t.join(timeout=5)  # give stopping threads a moment to finish
    alive = [t for t in leaked if t.is_alive()]
    assert not alive, f"test leaked threads: {alive}"


# A real writer in another process, driven line by line over stdin so that each test
# step (write, rotate, truncate) has happened on disk before the test reads.
_WRITER = r"""
import os, shutil, sys
path = sys.argv[1]
f = open(path, "ab", buffering=0)  # O_APPEND, like logging's FileHandler
for cmd in sys.stdin:
    op, _, arg = cmd.rstrip("\n").partition(" ")
    if op == "w": f.write(arg.encode() + b"\n")            # one complete line
    elif op == "p": f.write(arg.encode())                  # a piece of a line
    elif op == "r": f.write(arg.encode() + b"\r")          # a tqdm-style update
    elif op == "rename": os.rename(path, arg)              # keep writing to the old fd
    elif op == "reopen": f.close(); f = open(path, "ab", buffering=0)
    elif op == "copytruncate": shutil.copyfile(path, arg); f.truncate(0)
    elif op == "rm": f.close(); os.unlink(path)
    print("ok", flush=True)
"""


class LogWriter:
    """A subprocess appending to `path`; each call returns once the change is on disk."""

    def __init__(self, path):
        import subprocess
        import sys
        self.path = str(path)
        self.proc = subprocess.Popen([sys.executable, "-c", _WRITER, self.path], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def do(self, op: str, arg: str = "") -> None:
        self.proc.stdin.write(f"{op} {arg}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "ok\n", f"writer failed at {op} {arg}"

    def lines(self, *texts: str) -> None:
        for t in texts:
            self.do("w", t)

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def log_writer():
    """Factory: log_writer(path) starts a writer process for path; all are stopped at teardown."""
    writers = []

    def start(path):
        writers.append(LogWriter(path))
        return writers[-1]
    yield start
    for w in writers:
        if w.proc.poll() is None:
            w.close()


@pytest.fixture
def torch_device():
    """Makes ALERTD_TEST_DEVICE torch's default device for the test (a no-op for the CPU)."""
    if TORCH_DEVICE == "cpu":
        yield TORCH_DEVICE
        return
    import torch
    if TORCH_DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.fail("ALERTD_TEST_DEVICE=cuda but torch sees no CUDA device")
    torch.set_default_device(TORCH_DEVICE)
    try:
        yield TORCH_DEVICE
    finally:
        torch.set_default_device(None)
