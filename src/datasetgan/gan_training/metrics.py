"""FID and KID with an Inception-v3 feature extractor read from a local file only.

The weights are torchvision's ``inception_v3`` state dict (``.safetensors``, or
``.pt``/``.pth`` read with ``weights_only=True``, no code runs). Nothing is
downloaded: without ``--metrics-weights`` the metrics are skipped with a
notice. Features are the 2048-d pool3 activations. Note that torchvision's
Inception gives numbers close to, but not equal to, NVIDIA's TF-Inception FID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import write_json
from datasetgan.core.weights import read_state_dict

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_inception(path: str | Path, device: torch.device) -> torch.nn.Module:
    """torchvision ``inception_v3`` with weights from ``path``; returns pool features ``[N, 2048]``."""
    import torchvision

    state = read_state_dict(path, "--metrics-weights")
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    has_aux = any(k.startswith("AuxLogits.") for k in state)
    if not has_aux:
        model.AuxLogits = None
        model.aux_logits = False
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(path, f"not torchvision inception_v3 weights ({str(exc)[:300]})") from None
    model.fc = torch.nn.Identity()
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """``images [N, 3, H, W]`` uint8 -> features ``[N, 2048]`` (float64, on the CPU)."""
    device = next(model.parameters()).device
    x = images.to(device).float() / 255
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - _MEAN.to(device)) / _STD.to(device)
    return model(x).double().cpu()


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to ``a [N, D]`` and ``b [M, D]``."""
    a, b = a.numpy(), b.numpy()
    mu_a, mu_b = a.mean(0), b.mean(0)
    xa, xb = a - mu_a, b - mu_b
    na, nb = a.shape[0] - 1, b.shape[0] - 1
    trace_a, trace_b = np.square(xa).sum() / na, np.square(xb).sum() / nb
    if max(na, nb) + 1 < a.shape[1]:
        # Few samples: tr(sqrtm(sa sb)) is the nuclear norm of xb xa^T / sqrt(na nb) (exact).
        trace_covmean = np.linalg.svd(xb @ xa.T, compute_uv=False).sum() / np.sqrt(na * nb)
    else:
        # tr(sqrtm(sa sb)) = sum of sqrt(eigenvalues of sa^1/2 sb sa^1/2): two symmetric
        # eigendecompositions, faster and steadier than scipy's general sqrtm.
        sa, sb = xa.T @ xa / na, xb.T @ xb / nb
        w, v = np.linalg.eigh(sa)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0, None)).sum()
    return float(np.square(mu_a - mu_b).sum() + trace_a + trace_b - 2 * trace_covmean)


def kid_from_features(a: torch.Tensor, b: torch.Tensor, num_subsets: int = 100, max_subset_size: int = 1000,
                      seed: int = 0) -> float:
    """Kernel inception distance (unbiased MMD^2, cubic polynomial kernel), NVIDIA's subset scheme."""
    a, b = a.numpy(), b.numpy()
    n = a.shape[1]
    m = min(a.shape[0], b.shape[0], max_subset_size)
    rng = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = b[rng.choice(b.shape[0], m, replace=False)]
        y = a[rng.choice(a.shape[0], m, replace=False)]
        kxx = (x @ x.T / n + 1) ** 3
        kyy = (y @ y.T / n + 1) ** 3
        kxy = (x @ y.T / n + 1) ** 3
        t += (kxx.sum() - np.diag(kxx).sum() + kyy.sum() - np.diag(kyy).sum()) / (m - 1) - kxy.sum() * 2 / m
    return float(t / num_subsets / m)


def compute_metrics(names: list[str], weights: str | Path, reals: torch.Tensor,
                    make_fakes: Callable[[int], torch.Tensor], num: int, device: torch.device,
                    batch: int = 64, size: int = 299) -> dict[str, float]:
    """``reals [N, 3, H, W]`` uint8; ``make_fakes(k)`` -> ``[k, 3, H, W]`` uint8 (called per batch)."""
    model = load_inception(weights, device)
    num = min(num, reals.shape[0]) if reals.shape[0] else num
    real_f = torch.cat([inception_features(model, reals[i:i + batch], size) for i in range(0, num, batch)])
    fake_f = torch.cat([inception_features(model, make_fakes(min(batch, num - i)), size)
                        for i in range(0, num, batch)])
    out = {}
    if "fid" in names:
        out["fid"] = fid_from_features(real_f, fake_f)
    if "kid" in names:
        out["kid"] = kid_from_features(real_f, fake_f)
    return out


def report_metrics(cfg, G_ema, dataset, run_dir: Path, snapshot: Path, device: torch.device, log) -> dict | None:
    """Compute the requested metrics for ``snapshot`` and write ``snapshot/metrics.json`` (or skip with a notice)."""
    names = [n.strip().lower() for n in cfg.metrics.split(",") if n.strip() and n.strip() != "none"]
    unknown = set(names) - {"fid", "kid"}
    if unknown:
        raise UserError(f"--metrics {cfg.metrics}: unknown metric(s) {sorted(unknown)} (known: fid, kid)")
    if not names:
        return None
    if not cfg.metrics_weights:
        log("train-gan: FID/KID skipped: no --metrics-weights given (a local torchvision inception_v3 "
            "weights file; nothing is downloaded)")
        return None
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed + 12345)

    def make_fakes(k: int) -> torch.Tensor:
        z = torch.randn([k, G_ema.z_dim], generator=gen).to(device)
        with torch.no_grad():
            img = G_ema(z, noise_mode="const")
        return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)

    # Reals in a fixed shuffled order so a subset is representative.
    perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed))
    reals = dataset.images[perm[:cfg.metrics_images]]
    values = compute_metrics(names, cfg.metrics_weights, reals, make_fakes, cfg.metrics_images, device)
    record = {**values, "num_images": min(cfg.metrics_images, len(dataset)), "weights": str(cfg.metrics_weights),
              "snapshot": snapshot.name}
    write_json(snapshot / "metrics.json", record)
    from datasetgan.core.fileio import append_jsonl
    append_jsonl(run_dir / "metrics.jsonl", record)
    log("train-gan: " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
    return record
