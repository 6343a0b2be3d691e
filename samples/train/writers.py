"""Log writers that print what real tools print: JSONL, print lines, MMEngine, HF Trainer,
Lightning CSVLogger and tqdm. A fake clock keeps timestamps and rates deterministic."""
from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import IO, Any

T0 = dt.datetime(2024, 1, 1, 12, 0, 0)


class FakeClock:
    """Seconds since T0, advanced by the training loop, never by the wall clock."""

    def __init__(self, step_s: float = 0.08) -> None:
        self.t, self.step_s = 0.0, step_s

    def tick(self, n: int = 1) -> None:
        self.t += self.step_s * n

    def __call__(self) -> float:
        return 1_704_110_400.0 + self.t  # used as tqdm's timer

    def stamp(self) -> str:
        return (T0 + dt.timedelta(seconds=self.t)).strftime("%Y/%m/%d %H:%M:%S")


class JsonlLog:
    """One JSON object per line, as json.dumps writes it (NaN and Infinity included)."""

    def __init__(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        self.f = open(path, "w")
        if meta is not None:
            self.write({"meta": meta})

    def write(self, rec: dict[str, Any]) -> None:
        self.f.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self.f.close()


def _fmt(key: str, v: float) -> str:
    if "lr" in key or "learning_rate" in key:
        return f"{v:.2e}"
    return f"{v:.4f}"


class PrintLog:
    """`step 120 | loss 2.3412 | grad_norm 0.8123 | lr 1.00e-04`, among other stdout lines."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "w")

    def text(self, line: str) -> None:
        self.f.write(line + "\n")

    def write(self, step: int, **metrics: float) -> None:
        parts = [f"step {step}"] + [f"{k} {_fmt(k, v)}" for k, v in metrics.items()]
        self.f.write(" | ".join(parts) + "\n")

    def close(self) -> None:
        self.f.close()


class MMEngineLog:
    """MMEngine's LogProcessor lines: `<stamp> - mmengine - INFO - Epoch(train) [e][ i/N]  lr: ...`."""

    def __init__(self, path: Path, clock: FakeClock, exp: str) -> None:
        self.f, self.clock, self.exp = open(path, "w"), clock, exp

    def info(self, msg: str) -> None:
        self.f.write(f"{self.clock.stamp()} - mmengine - INFO - {msg}\n")

    def train(self, epoch: int, it: int, n_iter: int, lr: float, left_iters: int,
              memory: int, **losses: float) -> None:
        eta = str(dt.timedelta(seconds=int(left_iters * self.clock.step_s)))
        width = len(str(n_iter))
        head = f"Epoch(train) [{epoch}][{it:>{width}}/{n_iter}]"
        body = (f"  lr: {lr:.4e}  eta: {eta}  time: {self.clock.step_s:.4f}  data_time: 0.0100"
                f"  memory: {memory}")
        body += "".join(f"  {k}: {v:.4f}" for k, v in losses.items())
        self.info(head + body)

    def close(self) -> None:
        self.f.close()


class HFLog:
    """transformers' ProgressCallback: `str(logs)` per logging step (v4 floats, v5 strings)."""

    def __init__(self, path: Path, v5: bool = False) -> None:
        self.f, self.v5 = open(path, "w"), v5

    def text(self, line: str) -> None:
        self.f.write(line + "\n")

    def log(self, logs: dict[str, float]) -> None:
        if self.v5:  # 5.x pre-formats every number (FIELD_NOTES)
            logs = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in logs.items()}
        self.f.write(str(logs) + "\n")

    def close(self) -> None:
        self.f.close()


class LightningCSV:
    """CSVLogger's metrics.csv: one row per log_metrics call, header = sorted union of keys."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows = path, []  # type: ignore[var-annotated]

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.rows.append({**metrics, "step": step})

    def close(self) -> None:
        keys = sorted({k for r in self.rows for k in r})
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)


def open_tqdm(path: Path, total: int, clock: FakeClock, desc: str | None = None,
              ascii: bool = True):
    """A real tqdm bar writing into `path`, driven by the fake clock."""
    from tqdm import tqdm  # test/dev dependency: the sample logs are produced with real tqdm

    f: IO[str] = open(path, "w", encoding="utf-8")
    bar = tqdm(total=total, file=f, desc=desc, ascii=ascii)
    bar._time = clock
    bar.start_t = bar.last_print_t = clock()
    return bar, f

