"""``DemoConfig``: every setting of ``datasetgan demo``, composed of the stages' own configs.

Presets live in ``configs/demo*.yaml``; each stage's section holds that stage's keys
(``interpreter:``, ``synthesis:``, ``segmenter:``, ...), exactly as its command's
``--config`` would. Why each setting has the value it has, with the measurements
behind it, is in docs/DEMO.md (the runs themselves in docs/DEMO_RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from datasetgan.core.config import build_config
from datasetgan.core.errors import UserError
from datasetgan.core.options import setting
from datasetgan.generator.config import SampleConfig
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.segmenter.config import SegmenterTrainingConfig
from datasetgan.synthesis.config import SynthesisConfig, seeds_to_keep

# Both segmenters: DeepLabV3+'s stride-4 decoder and frequency-weighted cross-entropy, since with
# torchvision's DeepLabV3 (logits at stride 16, 4x4 at 64 px) and a plain loss even exact labels
# teach nothing but the large parts in this budget; random down-scaling, since the generator lost the
# rendered domain's small, off-centre faces and the test set has them.
_SEGMENTER = SegmenterTrainingConfig(arch="deeplabv3_mobilenet_v3_large", epochs=17, batch_size=16, resolution=64,
                                     decoder="plus", class_weight_power=0.5, zoom_out=1.6)


@dataclass(frozen=True)
class DemoConfig:
    """The end-to-end demo. Seeds of the three image sources never overlap: the labelled
    samples (``labelled.seeds``), the synthesised ones (from ``synthesis.seed_start``) and
    the rendered test faces (from ``test_seed_start``)."""

    generator: str = setting("", "use this generator instead of the bundled one", metavar="CKPT",
                             default_text="the bundled demo generator")   # "random": a tiny untrained one
    labels: str = ""                     # labels of the labelled samples; "" = bundled, "annotate" = the annotator's
    annotator: str = ""                  # annotator folder; "" = bundled (a tiny one is trained if missing)
    # The samples a person (here the annotator) labels.
    labelled: SampleConfig = SampleConfig(seeds="0-15", truncation=0.7)
    # Every convolution's features and the image itself; exactly 30 epochs at a large batch instead of
    # the reference's early stopping, which assumes millions of labelled pixels and stopped the members
    # before they had learnt the small parts; class weights, without which no member votes for a part
    # of a few pixels.
    interpreter: InterpreterConfig = InterpreterConfig(members=5, pixels_per_image=2000, class_weight_power=0.25,
                                                       layers=("all", "img"), min_epochs=30, max_epochs=30,
                                                       batch_size=512, lr=0.003)
    synth_keep: int = setting(2000, "synthetic images to keep", metavar="N")
    # ``num_images`` is derived from ``synth_keep`` (``synth_total``). Truncation 1.0 keeps all of the generator's
    # variety (pose, scale, colour), which the segmenter needs to meet the rendered test faces.
    synthesis: SynthesisConfig = SynthesisConfig(seed_start=100_000, truncation=1.0, drop_uncertain=0.1,
                                                 batch_size=16, ignore_pixels_above=0.15)
    # The DatasetGAN segmenter; weight decay picked on rendered validation faces, apart from the test faces.
    segmenter: SegmenterTrainingConfig = replace(_SEGMENTER, weight_decay=5e-4)
    # The few-shot baseline on the labelled samples alone; it levels off after about 7 epochs, and decay
    # made it worse on the validation faces. Its epochs are at most the segmenter's.
    baseline: SegmenterTrainingConfig = replace(_SEGMENTER, epochs=8)
    # true: the labelled samples are listed n_synth / n_labelled times per epoch, so that the baseline
    # takes as many steps per epoch as the DatasetGAN segmenter.
    baseline_same_steps: bool = True
    # Then the DatasetGAN segmenter is fine-tuned on the labelled samples for this many epochs of the
    # baseline's length (0 = not), at this rate, keeping its BatchNorm statistics: a step beyond the
    # paper, reported next to it.
    finetune_epochs: int = 1
    finetune_lr: float = 1e-4
    # On a CPU, train the two segmenters at once, each on half of the torch threads: small runs use
    # two cores better side by side than one after the other.
    seg_side_by_side: bool = True
    test_images: int = setting(300, "rendered test faces", metavar="N")
    test_seed_start: int = 1_000_000
    device: str = setting("cpu", "cpu, cuda or cuda:N")
    quiet: bool = setting(False, "stage headers and the table only")

    def __post_init__(self) -> None:
        if self.finetune_epochs < 0:
            raise UserError(f"finetune_epochs: expected 0 (no fine-tuning) or more, got {self.finetune_epochs}")
        if not self.finetune_lr > 0:
            raise UserError(f"finetune_lr: expected a rate > 0, got {self.finetune_lr}")
        for name in ("synth_keep", "test_images"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(self, name)}")

    @property
    def synth_total(self) -> int:
        """Candidate seeds to synthesise so that ``synth_keep`` remain, by ``synthesize``'s own rounding."""
        return seeds_to_keep(self.synth_keep, self.synthesis.drop_uncertain)

    @property
    def synthesis_run(self) -> SynthesisConfig:
        """The synthesis config the demo runs: ``synthesis`` with ``synth_total`` seeds."""
        return replace(self.synthesis, num_images=self.synth_total)

    @property
    def baseline_run(self) -> SegmenterTrainingConfig:
        """The baseline's config, with at most the DatasetGAN segmenter's epochs."""
        return replace(self.baseline, epochs=min(self.baseline.epochs, self.segmenter.epochs))


# The quick preset, for installs without the repository's configs/ folder.
QUICK = {"generator": "random", "labels": "annotate", "labelled": {"seeds": "0-7"},
         "interpreter": {"members": 2, "pixels_per_image": 200}, "synth_keep": 24,
         "synthesis": {"batch_size": 8}, "segmenter": {"epochs": 2, "batch_size": 8},
         "baseline": {"epochs": 1, "batch_size": 8}, "test_images": 16}


def preset_path(quick: bool) -> Path:
    """``configs/demo.yaml`` or ``configs/demo_quick.yaml`` of the repository."""
    return Path(__file__).resolve().parents[3] / "configs" / ("demo_quick.yaml" if quick else "demo.yaml")


def load_demo_config(preset: str | Path | None, quick: bool, overrides: dict | None = None) -> DemoConfig:
    """Defaults <- preset (``--config``, else the repository's preset, else the built-in one) <- flags.
    The defaults are the full demo; ``overrides`` may hold nested sections (``{"segmenter": {"epochs": 4}}``)."""
    from datasetgan.core.config import read_mapping
    from datasetgan.core.options import merge_preset

    if preset:
        data, source = read_mapping(preset), str(preset)
    elif preset_path(quick).exists():
        data, source = read_mapping(preset_path(quick)), str(preset_path(quick))
    else:
        data, source = (QUICK if quick else {}), "built-in preset"
    return build_config(DemoConfig, merge_preset(data, overrides or {}), source=source)
