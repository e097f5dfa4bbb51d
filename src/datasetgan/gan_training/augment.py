"""Augmentations applied to every image D sees (real and fake), so that D cannot overfit.

``AdaptiveAugment``: the StyleGAN2-ADA "bgc" pipeline (Karras et al. 2020). Each
transform is applied to each image with probability ``p``; ``p`` is steered
toward the target overfitting heuristic ``r_t = E[sign(D(real))]`` (0.6) by
``AdaController``. Geometric transforms are composed into one 3x3 matrix per
image and executed by a single bilinear ``grid_sample`` (reflection
padding): torch ops only, differentiable (twice, for R1) with respect to
the images. Colour transforms are composed into one 4x4 matrix per image.

``DiffAugment`` (Zhao et al. 2020): colour, translation and cutout, always on.

All randomness is drawn from the global torch RNG on the images' device, whose
state is saved in every checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _eye(n: int, batch: int, device: torch.device) -> torch.Tensor:
    return torch.eye(n, device=device).unsqueeze(0).repeat(batch, 1, 1)


def _mat(rows: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """Per-image matrix ``[N, r, c]`` from rows of scalars or ``[N]`` tensors.

    Scalars become ``torch.full`` (a fill kernel): a host->device copy of a Python
    number would make the host wait for the GPU.
    """
    n = like.shape[0]
    cols = [torch.full((n,), float(v), device=like.device) if not torch.is_tensor(v)
            else v.float().expand(n) for row in rows for v in row]
    return torch.stack(cols, dim=1).reshape(n, len(rows), len(rows[0]))


def _translate2d(tx, ty, like):
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], like)


def _scale2d(sx, sy, like):
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], like)


def _rotate2d(theta, like):
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], like)


class AdaptiveAugment(torch.nn.Module):
    """ADA pipeline ``x [N, 3, H, W] -> [N, 3, H, W]`` with per-image probability ``p``.

    ``p`` lives in a buffer so that updating it needs no host sync; the magnitudes
    are NVIDIA's defaults for the ``bgc`` preset.
    """

    def __init__(self, p: float = 0.0, xflip: float = 1, rotate90: float = 1, xint: float = 1,
                 scale: float = 1, rotate: float = 1, aniso: float = 1, xfrac: float = 1,
                 brightness: float = 1, contrast: float = 1, lumaflip: float = 1, hue: float = 1,
                 saturation: float = 1):
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))
        # Constants as buffers (moved with the module): no host->device copies per call.
        luma = torch.tensor([1, 1, 1, 0], dtype=torch.float32) / math.sqrt(3)
        self.register_buffer("luma_outer", torch.outer(luma, luma), persistent=False)
        a = 1 / math.sqrt(3)
        self.register_buffer("luma_cross", torch.tensor([[0, -a, a], [a, 0, -a], [-a, a, 0]]), persistent=False)
        self.w = dict(xflip=xflip, rotate90=rotate90, xint=xint, scale=scale, rotate=rotate, aniso=aniso,
                      xfrac=xfrac, brightness=brightness, contrast=contrast, lumaflip=lumaflip, hue=hue,
                      saturation=saturation)
        self.xint_max, self.scale_std, self.rotate_max, self.aniso_std, self.xfrac_std = 0.125, 0.2, 1.0, 0.2, 0.125
        self.brightness_std, self.contrast_std, self.hue_max, self.saturation_std = 0.2, 0.5, 1.0, 1.0

    def _gate(self, name: str, n: int, device: torch.device, p: torch.Tensor | None = None) -> torch.Tensor:
        """``[N]`` bool: apply transform ``name`` to image i."""
        prob = (self.p if p is None else p) * self.w[name]
        return torch.rand(n, device=device) < prob

    def geometric_matrix(self, n: int, size: int, device: torch.device) -> torch.Tensor:
        """``[N, 3, 3]`` inverse transform in normalised coordinates ([-1, 1], square images)."""
        like = torch.empty(n, device=device)
        g = _eye(3, n, device)
        one = torch.ones(n, device=device)
        if self.w["xflip"]:
            i = torch.floor(torch.rand(n, device=device) * 2)
            g = g @ _scale2d(torch.where(self._gate("xflip", n, device), 1 - 2 * i, one), 1, like)
        if self.w["rotate90"]:
            i = torch.floor(torch.rand(n, device=device) * 4)
            theta = torch.where(self._gate("rotate90", n, device), -math.pi / 2 * i, 0 * one)
            g = g @ _rotate2d(theta, like)
        if self.w["xint"]:
            # Integer pixel shifts: in normalised units a pixel is 2 / size.
            t = (torch.rand(n, 2, device=device) * 2 - 1) * self.xint_max
            t = torch.round(t * size) * 2 / size
            t = torch.where(self._gate("xint", n, device)[:, None], t, 0 * t)
            g = g @ _translate2d(t[:, 0], t[:, 1], like)
        if self.w["scale"]:
            s = torch.exp2(torch.randn(n, device=device) * self.scale_std)
            s = torch.where(self._gate("scale", n, device), s, one)
            g = g @ _scale2d(s, s, like)
        # Rotation is applied twice (before and after anisotropic scaling); each with
        # probability 1 - sqrt(1 - p) so that "rotated at all" has probability p.
        p_rot = 1 - torch.sqrt((1 - self.p * self.w["rotate"]).clamp(0, 1))
        if self.w["rotate"]:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(self._gate("rotate", n, device, p_rot / max(self.w["rotate"], 1e-8)), theta, 0 * one)
            g = g @ _rotate2d(-theta, like)
        if self.w["aniso"]:
            s = torch.exp2(torch.randn(n, device=device) * self.aniso_std)
            s = torch.where(self._gate("aniso", n, device), s, one)
            g = g @ _scale2d(s, 1 / s, like)
        if self.w["rotate"]:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(self._gate("rotate", n, device, p_rot / max(self.w["rotate"], 1e-8)), theta, 0 * one)
            g = g @ _rotate2d(-theta, like)
        if self.w["xfrac"]:
            t = torch.randn(n, 2, device=device) * self.xfrac_std * 2
            t = torch.where(self._gate("xfrac", n, device)[:, None], t, 0 * t)
            g = g @ _translate2d(t[:, 0], t[:, 1], like)
        return g

    def colour_matrix(self, n: int, device: torch.device) -> torch.Tensor:
        """``[N, 4, 4]`` affine colour transform acting on (r, g, b, 1)."""
        c = _eye(4, n, device)
        vv = self.luma_outer                                # v v^T for the luma axis v = (1, 1, 1, 0) / sqrt(3)
        eye4 = torch.eye(4, device=device)
        if self.w["brightness"]:
            b = torch.randn(n, device=device) * self.brightness_std
            b = torch.where(self._gate("brightness", n, device), b, 0 * b)
            t = _eye(4, n, device)
            t[:, :3, 3] = b[:, None]
            c = t @ c
        if self.w["contrast"]:
            s = torch.exp2(torch.randn(n, device=device) * self.contrast_std)
            s = torch.where(self._gate("contrast", n, device), s, torch.ones_like(s))
            t = _eye(4, n, device)
            t[:, :3, :3] *= s[:, None, None]
            c = t @ c
        if self.w["lumaflip"]:
            i = torch.floor(torch.rand(n, device=device) * 2)
            i = torch.where(self._gate("lumaflip", n, device), i, 0 * i)
            c = (eye4 - 2 * vv * i[:, None, None]) @ c          # Householder reflection
        if self.w["hue"]:
            theta = (torch.rand(n, device=device) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(self._gate("hue", n, device), theta, 0 * theta)
            c = _rotate_about(self.luma_cross, theta) @ c
        if self.w["saturation"]:
            s = torch.exp2(torch.randn(n, device=device) * self.saturation_std)
            s = torch.where(self._gate("saturation", n, device), s, torch.ones_like(s))
            c = (vv + (eye4 - vv) * s[:, None, None]) @ c
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Matrices and resampling in float32 even under autocast (bf16 would quantise pixels).
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        n, ch, h, w = x.shape
        device = x.device
        dtype = x.dtype
        g = self.geometric_matrix(n, h, device)
        # At native resolution an identity (or flip / rot90 / integer shift) samples pixel
        # centres exactly, so p = 0 leaves images untouched.
        grid = F.affine_grid(g[:, :2, :], [n, ch, h, w], align_corners=False)
        y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if ch == 3:
            c = self.colour_matrix(n, device)
            y = (c[:, :3, :3] @ y.reshape(n, 3, h * w) + c[:, :3, 3:]).reshape(n, 3, h, w)
        return y.to(dtype)


def _rotate_about(cross: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``[N, 4, 4]`` rotation by ``theta [N]`` about a unit axis given by its cross-product matrix ``[3, 3]`` (Rodrigues)."""
    n = theta.shape[0]
    s, co = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    r3 = torch.eye(3, device=theta.device) + s * cross + (1 - co) * (cross @ cross)
    out = _eye(4, n, theta.device)
    out[:, :3, :3] = r3
    return out


class AdaController:
    """Steers ``augment.p`` toward ``target`` from the sign of D(real), NVIDIA-style.

    Every ``interval`` steps: ``p += sign(mean sign(D(real)) - target) * batch * interval / (ada_kimg * 1000)``,
    clamped at 0. Accumulation and the update stay on the device (no ``.item()``).
    """

    def __init__(self, augment: AdaptiveAugment, target: float = 0.6, interval: int = 4, ada_kimg: float = 500):
        self.augment, self.target, self.interval, self.ada_kimg = augment, target, interval, ada_kimg
        device = augment.p.device
        self.sign_sum = torch.zeros([], dtype=torch.float64, device=device)
        self.count = torch.zeros([], dtype=torch.float64, device=device)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add ``real_logits [N, 1]`` (detached) to the running sign statistics."""
        self.sign_sum += real_logits.detach().sign().sum().double()
        self.count += real_logits.numel()

    def update(self, batch_size: int, reduce=None) -> None:
        """Adjust ``p`` (call every ``interval`` steps). ``reduce`` all-reduces under DDP."""
        stats = torch.stack([self.sign_sum, self.count])
        if reduce is not None:
            reduce(stats)
        rt = stats[0] / stats[1].clamp(min=1)
        adjust = torch.sign(rt - self.target) * (batch_size * self.interval) / (self.ada_kimg * 1000)
        self.augment.p.copy_((self.augment.p + adjust.float()).clamp(min=0))
        self.sign_sum.zero_()
        self.count.zero_()


class DiffAugment(torch.nn.Module):
    """DiffAugment: ``policy`` is a comma list of ``color``, ``translation``, ``cutout``."""

    def __init__(self, policy: str = "color,translation,cutout"):
        super().__init__()
        self.policy = [p for p in policy.split(",") if p]
        unknown = set(self.policy) - {"color", "translation", "cutout"}
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {sorted(unknown)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C, H, W] -> [N, C, H, W]``."""
        n, _, h, w = x.shape
        dev = x.device
        if "color" in self.policy:
            x = x + (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) * 2) + mean
            mean = x.mean(dim=[1, 2, 3], keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) + 0.5) + mean
        if "translation" in self.policy:
            # Shift by up to 1/8 of the size with zero fill, via an integer-offset gather.
            sx, sy = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
            tx = torch.randint(-sx, sx + 1, (n, 1, 1), device=dev)
            ty = torch.randint(-sy, sy + 1, (n, 1, 1), device=dev)
            gx, gy = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
            gx = torch.clamp(gx[None] + tx + 1, 0, h + 1)
            gy = torch.clamp(gy[None] + ty + 1, 0, w + 1)
            xp = F.pad(x, [1, 1, 1, 1])
            idx = (gx * (w + 2) + gy).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
            x = xp.reshape(n, x.shape[1], -1).gather(2, idx).reshape(x.shape)
        if "cutout" in self.policy:
            ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
            ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=dev)
            oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=dev)
            gx, gy = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev), indexing="ij")
            dx, dy = gx[None] - ox + ch // 2, gy[None] - oy + cw // 2
            inside = (dx >= 0) & (dx < ch) & (dy >= 0) & (dy < cw)
            x = x * (~inside).unsqueeze(1).to(x.dtype)
        return x


def build_augment(kind: str, p: float = 0.0) -> torch.nn.Module | None:
    """``ada`` -> ``AdaptiveAugment``; ``diffaug`` -> ``DiffAugment``; ``none`` -> ``None``."""
    if kind == "ada":
        return AdaptiveAugment(p=p)
    if kind == "diffaug":
        return DiffAugment()
    if kind == "none":
        return None
    raise ValueError(f"unknown augmentation {kind!r}")
