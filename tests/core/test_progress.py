import io

from datasetgan.core import progress as progress_module
from datasetgan.core.progress import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_rarely_into_a_log(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress_module.sys, "stderr", log)
    bar = progress(desc="work", total=10, disable=False)
    assert bar.mininterval == 10.0
    bar.close()


def test_progress_redraws_often_on_a_terminal_and_can_be_told(monkeypatch):
    monkeypatch.setattr(progress_module.sys, "stderr", _Terminal())
    bar = progress(desc="work", total=10, disable=False)
    assert bar.mininterval == 0.1
    bar.close()
    bar = progress(desc="work", total=10, disable=False, mininterval=1.0)
    assert bar.mininterval == 1.0
    bar.close()
