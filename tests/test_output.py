"""What a run writes: a live bar on a terminal, and where output goes to a file (a SLURM job's log, CI, `| tee`)
one line per fit plus the round table, nothing else. Both run the default config with its progress bar on."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # whole runs of src/train.py

FIT_LINE = re.compile(r"^round (\d)/5 (detector|classifier): 15 epochs, final loss \d+\.\d{4}, \d+\.\d s$")


def test_piped_output_is_one_line_per_fit_and_the_round_table(tmp_path):
    result = subprocess.run([sys.executable, "src/train.py", f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    log = result.stdout
    assert "\r" not in log and "it/s" not in log  # no bar redraws
    lines = log.splitlines()
    fits = [FIT_LINE.match(line) for line in lines if FIT_LINE.match(line)]
    # round 0 trains the classifier, each of the 5 queries a detector and then a classifier
    assert [(int(m[1]), m[2]) for m in fits] == [(0, "classifier")] + [
        (r, role) for r in range(1, 6) for role in ("detector", "classifier")]
    table = [line for line in lines if re.match(r"^\s+\d\s+\d+\s+\d+\s+\d+", line)]
    assert [int(line.split()[0]) for line in table] == [0, 1, 2, 3, 4, 5]
    # set-up (2), the estimate, header, fits, table, "results in": the probe's fit prints nothing
    assert len(lines) == 2 + 1 + 1 + len(fits) + len(table) + 1
    assert lines[2].startswith("estimate: the whole run (5 queries of 40, 15 epochs a fit) should take about")
    assert len(log.encode()) < 4000  # was 120 KB of redraws before


def test_a_terminal_gets_the_live_bar_named_after_the_round_and_the_model(tmp_path):
    """The default progress-bar path (RoundProgressBar), under a pseudo-terminal as a person would see it."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # 160 columns, as a window
    process = subprocess.Popen([sys.executable, "src/train.py", f"hydra.run.dir={tmp_path / 'run'}", "al.rounds=1"],
                               cwd=ROOT, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    output = b"".join(chunks).decode(errors="replace")
    assert process.wait(timeout=600) == 0, output[-3000:]
    assert "round 0/1 classifier epoch 15/15" in output and "round 1/1 detector epoch 15/15" in output
    assert not re.search(r"^round \d/1 \w+: 15 epochs", output, re.M)  # the bar replaces the fit lines
    assert (tmp_path / "run" / "summary.json").exists()
