from datasetgan.cli import build_parser


def test_parser_builds():
    parser = build_parser()
    assert parser.prog == "datasetgan"


def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys):
    from datasetgan.cli import main

    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for argv in (["sample", "--checkpoint", "G", "--seeds", "0", "--out", str(taken)],
                 ["demo", "--quick", "--out", str(taken / "inside")],
                 ["convert", "G", str(taken)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert str(taken) in err and "not a folder" in err, err
    assert taken.read_text() == "not a folder"
