"""Keep the console to the per-round table: Lightning repeats its device banner for every fresh Trainer."""

import logging
import warnings


def quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed",
             "lightning.pytorch.trainer.connectors.signal_connector"):  # "SLURM auto-requeueing enabled" per fit
        logging.getLogger(name).setLevel(logging.WARNING)
    # in-memory tensors need no loader workers on the CPU; Lightning would warn on every fit
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    # SLURM tools on the PATH make Lightning suggest `srun` for every Trainer; jobs here run one process
    warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system.*")
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates; nothing the user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # DDP: the test metrics are torchmetrics objects, which add up every process's counts themselves
    warnings.filterwarnings("ignore", message=r".*self\.log\('test_\w+', \.\.\., sync_dist=True\)`.*")
    # a resumed run's CSV log is rewritten whole: osal logs the earlier rounds again before the new ones
    warnings.filterwarnings("ignore", message=r".*Experiment logs directory .* exists and is not empty.*")
