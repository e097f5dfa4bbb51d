import argparse

import pytest

from datasetgan import cli
from datasetgan.cli import build_parser

SUBCOMMANDS = {"train-gan", "sample", "convert", "invert", "train-interpreter", "annotate", "synthesize",
               "train-segmenter", "train-keypoints", "evaluate", "import-helen", "import-labelme",
               "import-labelstudio", "import-release", "demo"}


def test_parser_builds():
    parser = build_parser()
    assert parser.prog == "datasetgan"


def test_the_subcommands_are_exactly_these():
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == SUBCOMMANDS


def test_a_missing_stage_module_is_an_import_error(monkeypatch):
    # A stage whose module cannot be imported must not silently lose its commands.
    monkeypatch.setattr(cli, "STAGE_CLIS", [*cli.STAGE_CLIS, "datasetgan.no_such_stage.cli"])
    with pytest.raises(ModuleNotFoundError, match="datasetgan.no_such_stage"):
        build_parser()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    from datasetgan.cli import main

    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for argv in (["sample", "--generator", "G", "--seeds", "0", "--out", str(taken)],
                 ["demo", "--quick", "--out", str(taken / "inside")],
                 ["convert", "G", str(taken)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(taken) in err and "not a folder" in err, err
    assert taken.read_text() == "not a folder"
