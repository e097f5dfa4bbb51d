import pytest
import torch
import torchvision
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.gan_training.metrics import (compute_metrics, fid_from_features, kid_from_features,
                                             load_inception)


def test_fid_matches_scipy_sqrtm_formula():
    import numpy as np
    import scipy.linalg
    g = torch.Generator().manual_seed(1)
    a = torch.randn(50, 20, generator=g, dtype=torch.float64)
    b = torch.randn(60, 20, generator=g, dtype=torch.float64) * 1.5 + 0.3
    sa, sb = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    ref = (np.square(a.numpy().mean(0) - b.numpy().mean(0)).sum()
           + np.trace(sa + sb - 2 * np.real(scipy.linalg.sqrtm(sa @ sb))))
    assert fid_from_features(a, b) == pytest.approx(ref, rel=1e-8)


def test_fid_and_kid_on_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 8, generator=g, dtype=torch.float64)
    b = torch.randn(400, 8, generator=g, dtype=torch.float64)
    assert abs(fid_from_features(a, b)) < 0.3
    assert fid_from_features(a, b + 2) == pytest.approx(fid_from_features(a, b) + 4 * 8, abs=0.5)
    assert abs(kid_from_features(a, b, num_subsets=10, max_subset_size=100)) < 0.05
    assert kid_from_features(a, b + 2, num_subsets=10, max_subset_size=100) > 1


def test_local_inception_weights_only(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_inception(tmp_path / "none.safetensors", torch.device("cpu"))
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable weights file"):
        load_inception(tmp_path / "bad.pt", torch.device("cpu"))
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not torchvision inception_v3"):
        load_inception(tmp_path / "other.safetensors", torch.device("cpu"))


def test_metrics_with_random_inception(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    path = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    reals = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    same = compute_metrics(["fid", "kid"], path, reals, lambda k: reals[:k], 6, torch.device("cpu"), size=75)
    other = compute_metrics(["fid"], path, reals, lambda k: torch.zeros(k, 3, 16, 16, dtype=torch.uint8), 6,
                            torch.device("cpu"), size=75)
    assert "kid" in same and other["fid"] > 0
    assert abs(same["fid"]) < 1e-6 * other["fid"]
