"""`python src/campaign.py run|status DIR`: the command line of campaigns (src/campaign.py is its entry point)."""

import argparse
import math
import os
import sys
import time
from typing import Optional, Sequence

from osal.errors import OsalError

USAGE = """`python src/campaign.py run|status DIR [overrides]` advances a grid of runs a window at a time.

    python src/campaign.py run docs/measurements/campaigns/reproduce_cifar10 experiment=reproduce_cifar10 \\
        --seconds 540 --data-dir /path/to/datasets
    python src/campaign.py status docs/measurements/campaigns/reproduce_cifar10

`run` starts or continues the campaign in DIR for at most --seconds (the GPU window), as many runs at
once per GPU as --per-gpu says, each resuming from its own directory under DIR/runs/ and never
starting a round it cannot finish; then it prints the status table. Commit DIR afterwards: the next
window, on any machine, continues from it. See docs/cluster.md.
"""

# runs at once per GPU: in the first H200 window 4 runs at once each ran a round 1.4-1.7x slower than one run
# alone, about 2.5x the images/s in all (docs/benchmarks.md); benchmarks/packing.py has yet to compare 8
PER_GPU = 4
RESERVE, STARTUP = 60.0, 30.0  # seconds, the defaults of --reserve and --startup


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="campaign.py", description=USAGE.splitlines()[0],
                                   epilog=USAGE.split("\n", 2)[2],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="advance the campaign for one window")
    run.add_argument("directory", help="the campaign directory, e.g. docs/measurements/campaigns/<name>")
    run.add_argument("overrides", nargs="*", help="the grid: experiment=<name> [key=value ...] (first window; "
                     "later ones may repeat them or leave them out)")
    run.add_argument("--seconds", type=float, required=True, help="the window: the campaign stops within it")
    run.add_argument("--data-dir", default=None, help="where the datasets are (data_dir=...)")
    run.add_argument("--gpus", default=None, help="CUDA devices to use, e.g. 0,1 (default: every visible one; "
                     "none on a machine without a GPU: the runs then use the CPU)")
    run.add_argument("--per-gpu", type=int, default=PER_GPU, help=f"runs at once on each GPU (default {PER_GPU}); "
                     "on the CPU, runs at once")
    run.add_argument("--reserve", type=float, default=RESERVE, help="seconds kept free at the end of the window "
                     f"to stop and to copy the campaign back (default {RESERVE:g})")
    run.add_argument("--only", action="append", default=[], metavar="KEY=VALUE",
                     help="this window runs only the runs with this override, e.g. --only dataset=cifar10 where only "
                     "CIFAR-10's data is at hand (repeat for several; the others wait for a later window)")
    run.add_argument("--startup", type=float, default=STARTUP, help="seconds a run needs before its first round "
                     f"(default {STARTUP:g})")
    status = commands.add_parser("status", help="print where every run stands")
    status.add_argument("directory")
    status.add_argument("--per-gpu", type=int, default=PER_GPU, help="runs at once, for the minutes left")
    return main


def check_window(seconds: float, reserve: float, startup: float) -> None:
    """--seconds a positive number, --reserve and --startup none negative, all finite."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise OsalError(f"--seconds {seconds:g} is not a window: give its length in seconds, a positive number, "
                        "e.g. --seconds 540")
    for option, value, default in (("--reserve", reserve, RESERVE), ("--startup", startup, STARTUP)):
        if not (math.isfinite(value) and value >= 0):
            raise OsalError(f"{option} {value:g} must be a number of seconds, 0 or more (default {default:g})")


def slots(gpus: Optional[str], per_gpu: int) -> list[Optional[str]]:
    """One entry per run slot: a CUDA device index, or None for the CPU."""
    if per_gpu < 1:
        raise OsalError(f"--per-gpu {per_gpu} must be at least 1")
    import torch
    if gpus is None:
        gpus = ",".join(str(i) for i in range(torch.cuda.device_count())) or "none"
    if gpus == "none":
        return [None] * per_gpu
    indices = [gpu.strip() for gpu in gpus.split(",")]
    if not all(index.isdigit() for index in indices):
        raise OsalError(f"--gpus {gpus}: give CUDA device indices separated by commas, e.g. --gpus 0,1, or --gpus none "
                        "for the CPU")
    count = torch.cuda.device_count()
    if count and max(int(index) for index in indices) >= count:
        raise OsalError(f"--gpus {gpus}: this machine shows {count} GPU(s), numbered 0 to {count - 1}")
    return [index for index in indices for _ in range(per_gpu)]


def selected(runs: list, only: Sequence[str]) -> list:
    """The runs whose overrides include every KEY=VALUE of `only` (all of them without any)."""
    for pair in only:
        if "=" not in pair:
            raise OsalError(f"--only {pair}: give an override as KEY=VALUE, e.g. --only dataset=cifar10")
    chosen = [run for run in runs if all(pair in run.overrides for pair in only)]
    if only and not chosen:
        raise OsalError(f"--only {' '.join(only)} matches no run of this campaign; its runs' overrides look like "
                        f"{' '.join(runs[0].overrides)}")
    return chosen


def on_gpu(devices: Sequence[Optional[str]]) -> bool:
    import torch
    return devices[0] is not None and torch.cuda.is_available()


def describe(devices: Sequence[Optional[str]]) -> str:
    import torch
    if not on_gpu(devices):
        return f"the CPU ({os.cpu_count()} cores)"
    names = sorted({torch.cuda.get_device_name(int(d)) for d in devices})
    return f"{len(set(devices))} x {', '.join(names)}"


def status(args: argparse.Namespace) -> None:
    import torch

    from osal.campaign.campaign import Campaign
    from osal.campaign.progress import format_table
    if args.per_gpu < 1:
        raise OsalError(f"--per-gpu {args.per_gpu} must be at least 1")
    campaign = Campaign(args.directory)
    # the minutes left at the speeds measured so far: GPU minutes where a GPU would run the rest
    gpu = torch.cuda.is_available()
    print(format_table(campaign.progress(), args.per_gpu, "one GPU" if gpu else None, gpu))


def run(args: argparse.Namespace) -> None:
    if args.command == "status":
        status(args)
        return
    from osal.campaign.campaign import Campaign
    from osal.campaign.progress import format_table
    from osal.campaign.scheduler import REPOSITORY, Scheduler
    from osal.folders import exclusive_use, shown
    from osal.loop.processes import quoted

    check_window(args.seconds, args.reserve, args.startup)
    devices = slots(args.gpus, args.per_gpu)
    # quoted: a path with a space or an `=` in it is one value to Hydra
    extra = [f"data_dir={quoted(shown(args.data_dir, base=str(REPOSITORY)))}"] if args.data_dir else []
    campaign = Campaign(args.directory, args.overrides or None, extra)
    runs = selected(campaign.runs, args.only)
    device = describe(devices)
    campaign.check_before_window()  # before anything is written or any run starts
    os.makedirs(campaign.directory, exist_ok=True)
    with exclusive_use(campaign.directory, "src/campaign.py run"):
        campaign.save()
        chosen = f" ({len(runs)} in this window: {' '.join(args.only)})" if args.only else ""
        print(f"campaign {campaign.directory}: {len(campaign.runs)} runs{chosen}, {len(devices)} at a time on "
              f"{device}, {args.seconds:.0f} s")
        started = time.time()
        scheduler = Scheduler(campaign.directory, runs, campaign.configs, campaign.overrides, devices,
                              args.seconds, extra, args.reserve, args.startup)
        outcomes = scheduler.run()
        campaign.log_window(device, len(devices), time.time() - started, outcomes)
        print(format_table(campaign.progress(), len(devices), device, on_gpu(devices)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from osal.interrupt import EXIT_STATUS, Interrupted
    args = parser().parse_args(argv)
    try:
        run(args)
    except Interrupted:
        print("interrupted: every run was stopped and keeps its completed rounds; run the same command again to "
              "continue", file=sys.stderr)
        return EXIT_STATUS
    except OsalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0

