"""``DemoConfig``: every setting of ``datasetgan demo``; presets in ``configs/demo*.yaml``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from datasetgan.core.config import build_config
from datasetgan.core.errors import UserError


@dataclass(frozen=True)
class DemoConfig:
    """The end-to-end demo. Seeds of the three image sources never overlap:
    labelled samples (``labelled_seeds``), synthesised samples (from
    ``synth_seed_start``) and rendered test faces (from ``test_seed_start``)."""

    generator: str = ""                  # "" = the bundled demo generator; "random" = a tiny untrained one
    labels: str = ""                     # labels of the labelled samples; "" = bundled, "annotate" = run the annotator
    annotator: str = ""                  # annotator folder; "" = bundled (trained if missing)
    labelled_seeds: str = "0-15"
    truncation: float = 0.7              # of the labelled samples (what the annotator labels)
    # style interpreter
    members: int = 5
    pixels_per_image: str = "2000"
    # Cross-entropy weighted by class share ** -power. With the plain loss (0, the reference's) no
    # member ever voted for pupils or noses (a few pixels each at 64x64): the synthetic set had none.
    # Measured on the demo: 0.25 gives class shares close to the labelled ones; 0.5 over-paints them.
    class_weight_power: float = 0.25
    # Feature taps (train-interpreter --layers): "all" is every convolution, as the reference; "img" adds
    # each pixel's own colour, sharp where the 64 px convolutions carry 8 channels (see configs/demo.yaml).
    interpreter_layers: str = "all,img"
    # Exactly this many epochs over the labelled pixels, at this batch and rate. The reference's early
    # stopping (50 batches without a new best, from epoch 4) assumes millions of pixels; on 16 images at
    # 64 px it stopped the members after about 5 epochs, before they had learnt the small parts
    # (labels agreeing 67.2 mIoU with the annotator's against 70.9, see configs/demo.yaml).
    interpreter_epochs: int = 30
    interpreter_batch_size: int = 512
    interpreter_lr: float = 0.003
    # synthesis
    synth_keep: int = 2000               # labelled images kept after dropping the uncertain ones
    drop_uncertain: float = 0.1
    synth_seed_start: int = 100_000
    synth_batch_size: int = 16
    # Truncation of the synthesised samples. 1.0 keeps all of the generator's variety (pose, scale,
    # colour), which the segmenter needs to meet the rendered test faces; measured on the demo:
    # 31.9 mIoU at 1.0 against 29.6 at 0.7 (the labelled samples' 0.7).
    synth_truncation: float = 1.0
    # Pixels whose ensemble Jensen-Shannon divergence exceeds this are left unlabelled (None: none are).
    # Measured on the demo (segmenter seed 0 / 1): 39.0 / 38.1 mIoU with every pixel labelled, 40.5 / 39.0
    # above 0.15 (3.5% of the pixels), 40.6 / 39.2 above 0.124 (5%), 40.8 above 0.178 (2.5%); above
    # 0.036 (15%) noses vanish.
    synth_ignore_above: float | None = 0.15
    # segmenter (DeepLabV3, torchvision)
    arch: str = "deeplabv3_mobilenet_v3_large"
    seg_epochs: int = 17                 # see configs/demo.yaml
    seg_batch_size: int = 16
    seg_resolution: int = 64
    # DeepLabV3+'s stride-4 decoder and frequency-weighted cross-entropy, for both segmenters: with
    # torchvision's DeepLabV3 (logits at stride 16, 4x4 at 64 px) and a plain loss, even 2,000 rendered
    # faces with exact labels give 0 IoU on every part but skin, hair and neck in this budget.
    seg_decoder: str = "plus"
    seg_class_weight_power: float = 0.5
    # Random boxes up to 1.6x the image side: the image shrinks inside a margin of repeated border
    # pixels. The generator dropped the rendered domain's small, off-centre faces; both segmenters
    # meet them in the test set (measured: DatasetGAN 31.1 -> 34.7 mIoU, baseline 26.6 -> 32.8).
    seg_zoom_out: float = 1.6
    # Adam's L2 weight decay of each segmenter, each picked on 500 rendered validation faces (seeds
    # 2,000,000 on, apart from the test faces): the DatasetGAN segmenter 51.45 mIoU with 5e-4 against
    # 50.73 without (50.8 to 51.5 at epochs 15-17, against 49.2 to 50.7), the baseline 41.41 without
    # against 40.02 with 5e-4 (see docs/DEMO_RESULTS.md).
    seg_weight_decay: float = 5e-4
    baseline_weight_decay: float = 0.0
    # the baseline trains on the labelled samples alone; true: as many steps as the DatasetGAN segmenter
    # (the samples are listed n_synth / n_labelled times per epoch)
    baseline_same_steps: bool = True
    # The baseline stops after at most this many epochs (None: seg_epochs). It levels off after about 7:
    # 41.6, 41.8, 41.0, 42.1, 41.1, 40.6, 41.7 mIoU at epochs 7-13 (see configs/demo.yaml). Side by
    # side, the DatasetGAN segmenter then goes on alone on every thread (about 1.5x faster on 2 cores).
    baseline_epochs: int | None = 8
    # Then the DatasetGAN segmenter is fine-tuned on the labelled samples for this many epochs of the
    # baseline's length (0 = not): a step beyond the paper, reported next to its DatasetGAN segmenter.
    finetune_epochs: int = 1
    finetune_lr: float = 1e-4
    # On a CPU, train the two segmenters at once, each on half of the torch threads (the demo's
    # 2-core CPUs: about 24 images/s for each side by side against 35 for one run on both cores on a
    # Xeon, 63 against 89 on an EPYC with AVX-512).
    seg_side_by_side: bool = True
    # evaluation on rendered faces with exact labels
    test_images: int = 300
    test_seed_start: int = 1_000_000
    device: str = "cpu"
    quiet: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.drop_uncertain < 1:
            raise UserError(f"drop_uncertain: expected a fraction in [0, 1), got {self.drop_uncertain}")
        if self.finetune_epochs < 0:
            raise UserError(f"finetune_epochs: expected 0 (no fine-tuning) or more, got {self.finetune_epochs}")
        for name in ("seg_weight_decay", "baseline_weight_decay"):
            if not getattr(self, name) >= 0:
                raise UserError(f"{name}: expected 0 (none) or more, got {getattr(self, name)}")
        if self.synth_ignore_above is not None and not self.synth_ignore_above > 0:
            raise UserError(f"synth_ignore_above: expected a divergence > 0, or null for none, "
                            f"got {self.synth_ignore_above}")
        for name in ("synth_keep", "members", "seg_epochs", "seg_batch_size", "test_images", "synth_batch_size",
                     "baseline_epochs", "interpreter_epochs", "interpreter_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{name}: expected a positive integer, got {getattr(self, name)}")

    @property
    def synth_total(self) -> int:
        """The fewest seeds to synthesise so that ``synth_keep`` remain after dropping ``round(n * drop)``."""
        n = max(self.synth_keep, math.floor(self.synth_keep / (1 - self.drop_uncertain)) - 2)
        while n - round(n * self.drop_uncertain) < self.synth_keep:
            n += 1
        return n

    @property
    def baseline_seg_epochs(self) -> int:
        """The baseline segmenter's epochs: ``baseline_epochs``, at most ``seg_epochs``."""
        return min(self.seg_epochs, self.baseline_epochs or self.seg_epochs)


# The quick preset, for installs without the repository's configs/ folder.
QUICK = {"generator": "random", "labels": "annotate", "labelled_seeds": "0-7", "members": 2,
         "pixels_per_image": "200", "synth_keep": 24, "synth_batch_size": 8, "seg_epochs": 2,
         "baseline_epochs": 1, "seg_batch_size": 8, "test_images": 16}


def preset_path(quick: bool) -> Path:
    """``configs/demo.yaml`` or ``configs/demo_quick.yaml`` of the repository."""
    return Path(__file__).resolve().parents[3] / "configs" / ("demo_quick.yaml" if quick else "demo.yaml")


def load_demo_config(preset: str | Path | None, quick: bool, overrides: dict | None = None) -> DemoConfig:
    """Defaults <- preset (``--config``, else the repository's preset, else the built-in one) <- flags.
    The defaults are the full demo."""
    if preset:
        return build_config(DemoConfig, Path(preset), overrides)
    path = preset_path(quick)
    if path.exists():
        return build_config(DemoConfig, path, overrides)
    return build_config(DemoConfig, QUICK if quick else None, overrides)
