"""Where a long run is: on a terminal a live bar names the round and the model; where output goes to a file
(a SLURM job's log, CI, `| tee`) one line per fit instead; the round table gives an ETA either way."""

import sys
import time
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class RoundProgressBar(TQDMProgressBar):
    """Lightning's bar, described as "round r/R detector epoch e/E" instead of "Epoch e".

    It redraws at most every `min_interval` seconds (and at the end of each epoch): Lightning's
    bar redraws after every batch, which costs more than a small model's training step on a
    CPU and reads the logged metrics back from the GPU each time.
    """

    def __init__(self, round_index: int, rounds: int, role: str, min_interval: float = 0.2, **kwargs: Any):
        super().__init__(**kwargs)
        self.label = f"round {round_index}/{rounds} {role}"
        self.min_interval = float(min_interval)
        self._last_draw = float("-inf")

    def _should_update(self, current: int, total: int) -> bool:
        if not super()._should_update(current, total):
            return False
        now = time.monotonic()
        if current == total or now - self._last_draw >= self.min_interval:
            self._last_draw = now
            return True
        return False

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


def format_duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def on_terminal() -> bool:
    """Whether a live bar can be shown: both output streams are terminals (not a file, a pipe or `| tee`)."""
    return all(stream is not None and hasattr(stream, "isatty") and stream.isatty()
               for stream in (sys.stdout, sys.stderr))


def fit_line(role: str, round_index: int, rounds: int, epochs: int, loss: Optional[float], seconds: float) -> str:
    """One line for a finished fit, where a file has no use for a bar's redraws."""
    shown = "-" if loss is None else f"{loss:.4f}"
    return f"round {round_index}/{rounds} {role}: {epochs} epochs, final loss {shown}, {seconds:.1f} s"
