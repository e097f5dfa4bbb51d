"""The ``datasetgan`` command: one subcommand per pipeline stage.

Each stage keeps its own flags in ``<stage>/cli.py``, which defines
``register(subparsers)``; the parser it adds sets ``func`` to a function of the
parsed arguments. User errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from datasetgan.core.errors import UserError
from datasetgan.core.memory import keep_freed_memory
from datasetgan.core.options import check_required

# In pipeline order. A module registers one or more subcommands.
STAGE_CLIS = [
    "datasetgan.gan_training.cli",   # train-gan
    "datasetgan.generator.cli",      # sample, convert, import-release
    "datasetgan.inversion.cli",      # invert
    "datasetgan.labels.cli",         # import-helen, import-labelme, import-labelstudio
    "datasetgan.interpreter.cli",    # train-interpreter
    "datasetgan.annotate.cli",       # annotate
    "datasetgan.synthesis.cli",      # synthesize
    "datasetgan.segmenter.cli",      # train-segmenter, train-keypoints
    "datasetgan.evaluation.cli",     # evaluate
    "datasetgan.demo.cli",           # demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datasetgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_CLIS:
        importlib.import_module(name).register(sub)
    return parser


# Arguments that name an output folder, in every subcommand that has one.
OUTPUT_FOLDERS = {"out": "--out", "dst": "DST"}


def check_output_folders(args: argparse.Namespace) -> None:
    """An output folder that exists as a file is a user error (not a traceback from deep inside a stage)."""
    for dest, flag in OUTPUT_FOLDERS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        path = Path(value)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = "is a file" if existing == path else f"lies inside {existing}, which is a file"
            raise UserError(f"{flag} {value}: {where}, not a folder; give a folder (it is created if missing)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_required(parser, args)
    keep_freed_memory()  # large CPU tensors reuse freed memory instead of faulting in fresh pages
    try:
        check_output_folders(args)
        result = args.func(args)
    except UserError as exc:
        print(f"datasetgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"datasetgan {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
