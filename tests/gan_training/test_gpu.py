"""CUDA paths (bf16 autocast, channels_last, fused Adam, NVIDIA-style fp16 blocks); run with -m gpu."""

import pytest
import torch

from datasetgan.cli import build_parser
from datasetgan.gan_training.checkpoint import list_snapshots

pytestmark = pytest.mark.gpu


def _run(argv):
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


@pytest.fixture(autouse=True)
def _need_cuda():
    if not torch.cuda.is_available():
        pytest.fail("the gpu tests need a CUDA device")


@pytest.mark.parametrize("extra", [["--precision", "auto"],
                                   ["--precision", "fp32", "--num-fp16-res", "2", "--conv-clamp", "256"]])
def test_cuda_train_and_resume(image_folder, tmp_path, tiny_flags, extra):
    flags = [f if f != "cpu" else "cuda" for f in tiny_flags]
    out = tmp_path / "runs"
    base = ["train-gan", "--data", str(image_folder), "--out", str(out), *flags, *extra]
    assert _run(base + ["--kimg", "0.008"]) == 0
    assert _run(base + ["--kimg", "0.016", "--resume", "latest"]) == 0
    snaps = list_snapshots(out / "00000-data-16")
    assert [s.name for s in snaps] == ["kimg-000000.008", "kimg-000000.016"]
