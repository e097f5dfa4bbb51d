"""The ``datasetgan`` command: one subcommand per pipeline stage.

Each stage keeps its own flags in ``<stage>/cli.py``, which defines
``register(subparsers)``; the parser it adds sets ``func`` to a function of the
parsed arguments. User errors are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from datasetgan.core.errors import UserError

# In pipeline order. A module registers one or more subcommands.
STAGE_CLIS = [
    "datasetgan.gan_training.cli",   # train-gan
    "datasetgan.generator.cli",      # sample, convert
    "datasetgan.interpreter.cli",    # train-interpreter
    "datasetgan.synthesis.cli",      # synthesize
    "datasetgan.segmenter.cli",      # train-segmenter, train-keypoints
    "datasetgan.evaluation.cli",     # evaluate
    "datasetgan.demo.cli",           # demo
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datasetgan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in STAGE_CLIS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # stage not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
