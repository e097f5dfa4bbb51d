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
                                   ["--precision", "float32", "--num-fp16-res", "2", "--conv-clamp", "256"]])
def test_cuda_train_and_resume(image_folder, tmp_path, tiny_flags, extra):
    flags = [f if f != "cpu" else "cuda" for f in tiny_flags]
    out = tmp_path / "run"
    base = ["train-gan", "--data", str(image_folder), "--out", str(out), *flags, *extra]
    assert _run(base + ["--kimg", "0.008"]) == 0
    assert _run(base + ["--kimg", "0.016"]) == 0                 # resumes the run in --out
    snaps = list_snapshots(out)
    assert [s.name for s in snaps] == ["kimg-000000.008", "kimg-000000.016"]


def test_training_step_never_waits_for_the_gpu():
    """A step (all four phases, EMA, ADA update) issues no host<->device synchronisation."""
    from datasetgan.gan_training.augment import AdaController, AdaptiveAugment
    from datasetgan.gan_training.config import GanTrainingConfig, resolve
    from datasetgan.gan_training.distributed import DistInfo
    from datasetgan.gan_training.loop import _autocast_dtype, build_networks, make_optimizer
    from datasetgan.gan_training.losses import LossContext
    from datasetgan.gan_training.step import StepParts, train_step

    device = torch.device("cuda")
    cfg = resolve(GanTrainingConfig(data="-", resolution=16, batch_size=8, channel_base=128, channel_max=32,
                                    map_depth=1, z_dim=16, w_dim=16, gamma=1.0, pl_weight=2.0, ada_interval=1))
    G, G_ema, D = build_networks(cfg, device)
    D = D.to(memory_format=torch.channels_last)
    augment = AdaptiveAugment(p=0.5).to(device)
    ada = AdaController(augment, interval=1)
    ctx = LossContext(G=G, D=D, D_eager=D, augment=augment, ada=ada, r1_gamma=1.0, pl_weight=2.0,
                      autocast_dtype=_autocast_dtype(cfg, device), channels_last=True,
                      pl_mean=torch.zeros([], device=device))
    parts = StepParts(cfg=cfg, ctx=ctx, G=G, G_ema=G_ema, D=D, opt_G=make_optimizer(G, cfg, 4, device),
                      opt_D=make_optimizer(D, cfg, 16, device), ada=ada, info=DistInfo(), chunk=8)
    real = (torch.rand(8, 3, 16, 16, device=device) * 2 - 1).contiguous(memory_format=torch.channels_last)
    train_step(parts, real, 0, 0, lambda k, v: None)           # warm-up (lazy CUDA init may sync)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(parts, real, 16, 8, lambda k, v: None)      # R1 and path-length steps included
    finally:
        torch.cuda.set_sync_debug_mode("default")
