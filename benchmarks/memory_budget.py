"""Peak resident memory of whole runs on an image folder several times data.memory_budget: the first run (decodes
into the cache), a run read a batch at a time from the cache, and the same run with the images in memory.

    python benchmarks/memory_budget.py                     # 10,000, 20,000 and 40,000 images of 64x64, budget 50 MB
    python benchmarks/memory_budget.py --images 40000 --budget 1e8

Prints a markdown table (peak RSS of each src/train.py process, from wait4) with the machine it ran on. The
folder and the runs live in a temporary directory (or --work) that is deleted afterwards unless --keep.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 10


def write_folder(root: Path, images: int, size: int) -> None:
    """Smooth random images (they compress, so the folder is small on disk) in 10 class folders, 5% as test."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    per_class = images // CLASSES
    for c in range(CLASSES):
        for split, count in (("train", per_class - per_class // 20), ("test", per_class // 20)):
            folder = root / split / f"class_{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                a, b, phase = rng.uniform(0.5, 4.0, 3)
                base = np.sin(a * np.pi * x + phase) * np.cos(b * np.pi * y + c)
                rgb = np.stack([base, base * 0.5 + c / CLASSES, -base], axis=-1)
                pixels = np.clip((rgb + 1.0) * 127.5 + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")


def peak_rss_of(command: list, log: Path) -> tuple:
    """(exit status, peak RSS in MB, seconds) of a command run to its end."""
    start = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[10000, 20000, 40000])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--budget", type=float, default=5e7, help="data.memory_budget in bytes")
    parser.add_argument("--work", type=Path, default=None, help="where the folder and runs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="osal-memory-"))
    rows = []
    try:
        for images in args.images:
            rows += measure(work / f"{images}", images, args.size, args.budget)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; "
              f"python {platform.python_version()}")
        print(f"images of {args.size}x{args.size}x3, data.memory_budget = {args.budget / 1e6:.0f} MB; each run: "
              "1 query of 500, 1 epoch per fit, small CNN, inference batches of 128\n")
        print("| images | decoded (MB) | run | peak RSS (MB) | seconds |")
        print("|---|---|---|---|---|")
        for images, decoded, what, peak, seconds in rows:
            print(f"| {images:,} | {decoded / 1e6:.0f} | {what} | {peak:.0f} | {seconds:.0f} |")
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, images: int, size: int, budget: float) -> list:
    """The three runs on a folder of `images` images: (images, decoded bytes, run, peak RSS MB, seconds)."""
    folder = work / "images"
    if not folder.exists():
        started = time.perf_counter()
        write_folder(folder, images, size)
        print(f"wrote {images} images in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    decoded = images * size * size * 3
    common = [sys.executable, "src/train.py", "trainer=cpu", "trainer.enable_progress_bar=false", "logger=none",
              "dataset=imagefolder", "model=small_cnn", f"data_dir={folder}", f"cache_dir={work / 'cache'}",
              "mismatch=0.4", "al.init_percent=8", "al.query_size=500", "al.rounds=1", "trainer.max_epochs=1",
              "data.inference_batch_size=128",  # activations of a 1024 batch would dwarf the images
              "fresh=true"]
    runs = [("first run: decodes into the cache", [f"data.memory_budget={budget:.0f}"], "first"),
            ("read a batch at a time from the cache", [f"data.memory_budget={budget:.0f}"], "budget"),
            ("images in memory (data.memory_budget=null)", ["data.memory_budget=null"], "memory")]
    rows = []
    for what, extra, name in runs:
        code, peak, seconds = peak_rss_of([*common, *extra, f"hydra.run.dir={work / name}"], work / f"{name}.log")
        if code != 0:
            sys.exit(f"{what} failed (exit {code}); see {work / name}.log")
        rows.append((images, decoded, what, peak, seconds))
    return rows


if __name__ == "__main__":
    main()
