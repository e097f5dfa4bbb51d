"""``datasetgan train-gan``: train a StyleGAN2 on a folder or zip of images.

``--out RUN`` is the run folder itself. Started again with the same ``--out``, a
run resumes its newest snapshot, taking the settings not given from it (its
architecture must stay the same). ``--resume SNAPSHOT|RUN`` continues from
another snapshot (into ``--out``, or else into the snapshot's own run folder);
``--resume latest`` is the newest snapshot of ``--out``.

Earlier releases took ``--out`` as the parent of numbered run folders
(``RUNS/00003-<name>/``). That layout stays reachable for one release, with a
``FutureWarning``, as the hidden ``--outdir PARENT`` (with ``--name NAME``, and
``--resume latest`` meaning the newest run in PARENT). An ``--out`` that holds
numbered run folders and no run of its own is refused with a message naming both
ways, rather than guessed at.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from datasetgan.core.errors import UserError
from datasetgan.core.options import add_config_flags, config_from_args, print_dry_run, warn_deprecated
from datasetgan.gan_training import checkpoint as ckpt
from datasetgan.gan_training.config import (GanTrainingConfig, check_architecture, check_world_size, resolve,
                                            saved_settings)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-gan", help="train a StyleGAN2 on your images",
        description="Train a StyleGAN2 (with adaptive augmentation) on a folder or zip of images. The run folder "
                    "--out gets training_options.json, stats.jsonl, sample grids and resumable snapshots "
                    "(snapshots/kimg-*/; G_ema loads in sample, train-interpreter and synthesize). Started again "
                    "with the same --out, a run resumes its newest snapshot, with the settings not given taken "
                    "from it. Multi-GPU: torchrun --nproc_per_node N -m datasetgan.cli train-gan ... "
                    "(--outdir PARENT, deprecated, keeps the numbered run folders of earlier releases.)")
    p.add_argument("--out", metavar="RUN", help="the run folder (created; the run in it, if any, is resumed)")
    p.add_argument("--resume", metavar="SNAPSHOT|RUN",
                   help="continue from this snapshot, or from the newest one of this run folder ('latest': of "
                        "--out), into --out (default: the snapshot's own run folder)")
    add_config_flags(p, GanTrainingConfig)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    # The layout of earlier releases (--out was the parent of numbered run folders), for one release.
    p.add_argument("--outdir", metavar="PARENT", default=None, help=argparse.SUPPRESS)
    p.add_argument("--name", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def build_gan_training_config(args: argparse.Namespace) -> tuple[GanTrainingConfig, Path | None]:
    """``(config, snapshot to resume or None)``: defaults <- the resumed run's options <- ``--config``
    <- flags. A resumed snapshot's architecture is checked against the result."""
    out = Path(args.out) if args.out else None
    if args.outdir is not None:
        warn_deprecated("--outdir PARENT (a new numbered run folder in PARENT)", "--out RUN, the run folder itself")
        if out is not None:
            raise UserError("--out, --outdir: give one (--outdir, deprecated, is the parent of numbered run folders)")
        snapshot = (ckpt.newest_in_runs(args.outdir) if args.resume == "latest"
                    else ckpt.find_resume(args.resume, None) if args.resume else None)
    else:
        if args.name is not None:
            raise UserError("--name: only with --outdir (deprecated); --out names the run folder itself")
        if args.resume:
            snapshot = ckpt.find_resume(args.resume, out)
        else:
            snapshots = ckpt.list_snapshots(out) if out is not None else []
            snapshot = snapshots[-1] if snapshots else None
    state = ckpt.read_state(snapshot) if snapshot is not None else None
    base = saved_settings(state.get("options", {})) if state is not None else None
    cfg = config_from_args(GanTrainingConfig, args, base=base)
    if snapshot is not None:
        check_architecture(cfg, state.get("options", {}), snapshot)
    return cfg, snapshot


def run(args: argparse.Namespace) -> int:
    from datasetgan.gan_training.loop import default_run_name, train

    cfg, snapshot = build_gan_training_config(args)
    out = Path(args.out) if args.out else snapshot.parent.parent if snapshot is not None else None
    numbered = None
    if args.outdir is not None and snapshot is None:
        out, numbered = Path(args.outdir), args.name or default_run_name(cfg)
    if out is not None and snapshot is None and numbered is None and ckpt.holds_old_layout(out):
        raise UserError(f"--out {out}: not a run folder{ckpt.old_layout_hint(out)}")
    if args.dry_run:
        check_world_size(cfg, int(os.environ.get("WORLD_SIZE", "1")))
        where = out / f"<next number>-{numbered}" if numbered is not None else out
        print_dry_run(resolve(cfg), out=str(where) if where is not None else None,
                      resume=str(snapshot) if snapshot is not None else None)
        return 0
    if out is None:
        raise UserError("--out: required (the run folder; started again with the same --out, the run resumes)")
    run_dir = train(cfg, out, resume=snapshot, quiet=args.quiet, numbered=numbered)
    if os.environ.get("RANK", "0") == "0":
        print(run_dir)
    return 0
