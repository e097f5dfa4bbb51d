"""EvaluationConfig: its checks, and evaluate's --config / --dry-run."""

from __future__ import annotations

import json

import pytest

from datasetgan.cli import main
from datasetgan.core.errors import UserError
from datasetgan.evaluation.config import EvaluationConfig


def test_python_callers_get_the_command_lines_checks():
    with pytest.raises(UserError, match=r"^--cv-folds 1: needs at least 2 folds"):
        EvaluationConfig(cv_folds=1)
    with pytest.raises(UserError, match=r"^--checkpoint-every 0: must be at least 1"):
        EvaluationConfig(checkpoint_every=0)
    with pytest.raises(UserError, match=r"^--batch-size 0: must be at least 1"):
        EvaluationConfig(batch_size=0)
    assert EvaluationConfig(cv_folds=0).cv_folds == 0          # off, as before


def test_evaluate_dry_run_with_a_preset_and_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "eval.yaml").write_text("cv_folds: 5\ncv_seed: 3\n")
    argv = ["evaluate", "--model", "run", "--images", "i", "--labels", "l", "--spec", "s.yaml", "--out", "ev"]
    assert main([*argv, "--config", "eval.yaml", "--cv-seed", "7", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == {"cv_folds": 5, "cv_seed": 7, "checkpoint_every": 1,
                                                   "batch_size": 8}
    assert not (tmp_path / "ev").exists()
    assert main([*argv, "--cv-folds", "1"]) == 2
    assert "--cv-folds 1: needs at least 2 folds" in capsys.readouterr().err
