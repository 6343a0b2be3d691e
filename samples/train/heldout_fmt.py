"""One log sink, seven formats: the held-out runs write their metrics the way real tools do.

A training loop calls `sink.micro(loss, labels, **extras)` after each backward (the probe reads
it) and `sink.log(step, metrics)` after each optimizer step (the text/JSONL/CSV writers read it).
Metric names are canonical in the loop (loss, grad_norm, lr, loss_aux, kl_raw, z_var, z_mean,
label_unique, label_max) and spelled per format here, as each tool or habit spells them.
`train_step(fmt, every, alertd_step)` maps the step alertd gives a record back to the 0-based optimizer step.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .writers import FakeClock, HFLog, JsonlLog, LightningCSV, MMEngineLog, PrintLog

FORMATS = ("jsonl", "print", "tqdm", "mmengine", "hf", "csv", "probe")

# per-format spellings of the canonical names (a choice among them is made by seed)
NAMES: dict[str, dict[str, list[str]]] = {
    "jsonl": {"loss": ["loss", "train/loss"], "lr": ["lr", "train/lr"],
              "label_unique": ["labels/unique"], "label_max": ["labels/max"],
              "z_var": ["z/var", "z_init/var"], "z_mean": ["z/mean", "z_init/mean"]},
    "print": {"loss": ["loss", "loss_ce"], "z_var": ["z_var"], "z_mean": ["z_mean"]},
    "tqdm": {"loss": ["loss", "train/loss"], "grad_norm": ["gnorm"]},
    "mmengine": {"loss": ["loss"]},
    "hf": {"lr": ["learning_rate"]},
    "csv": {"loss": ["train_loss"]},
    "probe": {},
}


class Sink:
    """Writes the metrics of one run in one format, every `every` optimizer steps."""

    def __init__(self, path: Path, fmt: str, every: int, seed: int, num_classes: int | None,
                 meta: bool, steps: int, model=None, opt=None, grad_accum: int = 1,
                 opt_name: str = "Adam") -> None:
        self.fmt, self.every, self.seed, self.steps = fmt, every, seed, steps
        self.opt_name, self.window = opt_name, []  # HF averages the loss over its logging window
        self.clock = FakeClock(0.05)
        if fmt == "jsonl":
            m = {"num_classes": num_classes, "grad_accum": grad_accum} if meta and num_classes else None
            self.w: Any = JsonlLog(path, meta=m)
        elif fmt == "print":
            self.w = PrintLog(path)
            self.w.text(f"Namespace(seed={seed}, log_interval={every}, steps={steps})")
        elif fmt == "mmengine":
            self.w = MMEngineLog(path, self.clock, "heldout")
            self.n_iter = max(50, steps // 4)
            self.w.info(f"Checkpoints will be saved to /work_dirs/heldout_{seed}.")
        elif fmt == "hf":
            self.w = HFLog(path, v5=bool(seed % 2))
            self.w.text("***** Running training *****")
            self.w.text(f"  Total optimization steps = {steps:,}")
        elif fmt == "csv":
            self.w = LightningCSV(path)
        elif fmt == "tqdm":
            from tqdm import tqdm

            tqdm.monitor_interval = 0  # no monitor thread: the fake clock drives the bar
            self.f = open(path, "w", encoding="utf-8")
            # fixed miniters: tqdm redraws every `every` updates (the fake clock keeps time moving)
            self.w = tqdm(total=steps, file=self.f, ascii=bool(seed % 2), mininterval=0,
                          miniters=every)
            self.w._time = self.clock
            self.w.start_t = self.w.last_print_t = self.clock()
        elif fmt == "probe":
            from alertd.probe import Probe

            self.w = Probe(model, opt, path=path, every=every, grad_accum=grad_accum,
                           num_classes=num_classes)
        else:
            raise ValueError(fmt)

    def name(self, key: str) -> str:
        """The format's spelling of a canonical metric name."""
        options = NAMES[self.fmt].get(key, [key])
        return options[self.seed % len(options)]

    def micro(self, loss, labels=None, **extras) -> None:
        """After each backward (only the probe listens)."""
        if self.fmt == "probe":
            self.w.step(loss=loss, labels=labels, **extras)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """After optimizer step `step` (0-based); writes when the log interval says so."""
        self.clock.tick()
        fmt, e = self.fmt, self.every
        if fmt == "hf" and "loss" in metrics:
            self.window.append(metrics["loss"])
        if fmt == "tqdm":
            if (step + 1) % e == 0:
                self.w.set_postfix({self.name(k): v for k, v in metrics.items()}, refresh=False)
            self.w.update(1)
            return
        if fmt == "probe":
            return
        if fmt in ("jsonl", "print"):
            if step % e:
                return
        elif (step + 1) % e:
            return
        named = {self.name(k): v for k, v in metrics.items()}
        if fmt == "jsonl":
            self.w.write({"step": step, **named})
        elif fmt == "print":
            self.w.write(step, **named)
        elif fmt == "mmengine":
            epoch, it = step // self.n_iter + 1, step % self.n_iter + 1
            lr = named.pop("lr")
            self.w.train(epoch, it, self.n_iter, lr, self.steps - step - 1, 321, **named)
        elif fmt == "hf":
            # logging_nan_inf_filter: a non-finite loss is replaced by the window's finite mean
            fin = [v for v in self.window if math.isfinite(v)]
            if "loss" in named:
                named["loss"] = round(sum(fin) / len(fin), 4) if fin else 0.0
            named["epoch"] = round((step + 1) / self.steps, 4)
            self.window = []
            self.w.log(named)
        elif fmt == "csv":
            lr = named.pop("lr", None)
            if lr is not None:
                self.w.log_metrics({f"lr-{self.opt_name}": lr}, step)
            self.w.log_metrics({**named, "epoch": step // 100}, step)

    def close(self) -> None:
        if self.fmt == "tqdm":
            self.w.close()
            self.f.close()
        else:
            self.w.close()


def train_step(fmt: str, every: int, alertd_step: int) -> int:
    """The 0-based optimizer step of the record alertd numbered `alertd_step`."""
    if fmt in ("jsonl", "print", "csv"):
        return alertd_step
    if fmt == "hf":  # no step in the line and no `Num Epochs` in this header: records 1, 2, ...
        return alertd_step * every - 1
    return alertd_step - 1  # tqdm's n, MMEngine's 1-based iteration, the probe's step count
