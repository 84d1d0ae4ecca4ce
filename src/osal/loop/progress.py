"""Where a long run is: the progress bar names the round and the model, the table gives an ETA."""

import time
from typing import Any

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


def eta_seconds(elapsed: float, rounds_done: int, rounds_total: int) -> float:
    """Remaining time if every remaining round costs what the finished ones did on average."""
    if rounds_done <= 0:
        return float("nan")
    return elapsed / rounds_done * max(rounds_total - rounds_done, 0)


def format_duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
