"""``python -m tests.synthesis.torchrun_rank synthesize ...``: the ``datasetgan`` command, for the
torchrun tests, with each rank's rendered seeds appended to ``$RANK_LOG_DIR/rank<R>.txt`` and, with
``DIE_RANK=R DIE_AT_BATCH=B``, rank R dying (``os._exit``, as a killed process would) at its B-th batch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from datasetgan.cli import main
from datasetgan.synthesis import run as synth_run

RANK = int(os.environ.get("RANK", "0"))


def _install() -> None:
    original = synth_run.render_batch
    log = Path(os.environ["RANK_LOG_DIR"]) / f"rank{RANK}.txt" if os.environ.get("RANK_LOG_DIR") else None
    die_rank, die_at = int(os.environ.get("DIE_RANK", "-1")), int(os.environ.get("DIE_AT_BATCH", "0"))
    calls = {"n": 0}

    def logged(G, seeds, *args, **kwargs):
        calls["n"] += 1
        if RANK == die_rank and calls["n"] == die_at:
            os._exit(17)
        if log is not None:
            with open(log, "a") as f:
                f.write(" ".join(map(str, seeds)) + "\n")
        return original(G, seeds, *args, **kwargs)
    synth_run.render_batch = logged


if __name__ == "__main__":
    _install()
    sys.exit(main(sys.argv[1:]))
