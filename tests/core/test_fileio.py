import pytest

from datasetgan.core import fileio


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_json_and_jsonl_roundtrip(tmp_path):
    fileio.write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").read_text().strip().startswith("{")
    path = tmp_path / "log.jsonl"
    fileio.append_jsonl(path, {"i": 0})
    fileio.append_jsonl(path, {"i": 1})
    with open(path, "a") as f:
        f.write('{"i": 2')  # torn last line, as after a crash
    assert fileio.read_jsonl(path) == [{"i": 0}, {"i": 1}]


def test_path_errors_survive_pickling():
    # Data-loader workers send exceptions to the main process by pickling them.
    import pickle

    from datasetgan.core.errors import CheckpointError, LabelError

    for cls in (CheckpointError, LabelError):
        err = pickle.loads(pickle.dumps(cls("a/b.png", "bad size")))
        assert isinstance(err, cls) and str(err) == "a/b.png: bad size" and err.path == "a/b.png"


def test_damaged_json_is_a_user_error_naming_the_file(tmp_path):
    from datasetgan.core.errors import UserError

    with pytest.raises(UserError, match=r"run\.json: run description not found"):
        fileio.read_json(tmp_path / "run.json", "run description")
    (tmp_path / "run.json").write_text('{"epoch": ')
    with pytest.raises(UserError, match=r"run\.json: file is not valid JSON"):
        fileio.read_json(tmp_path / "run.json")
    (tmp_path / "run.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(UserError, match=r"run\.json: file is not valid JSON"):
        fileio.read_json(tmp_path / "run.json")
    # A damaged complete line (not a torn last one) is named with its line number.
    (tmp_path / "log.jsonl").write_text('{"i": 0}\n{"i": \n{"i": 2}\n')
    with pytest.raises(UserError, match=r"log\.jsonl, line 2: not valid JSON"):
        fileio.read_jsonl(tmp_path / "log.jsonl")


def test_finished_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    """Data sets and checkpoints must be readable by whoever the umask allows."""
    import os
    import stat

    fileio.write_json(tmp_path / "a.json", {"x": 1})
    with fileio.atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"1")
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == fileio.FILE_MODE
    mask = os.umask(0o022)
    os.umask(mask)
    assert fileio.FILE_MODE == 0o666 & ~mask
