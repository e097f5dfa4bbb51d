"""``datasetgan annotate``'s settings: one frozen dataclass (flags, presets and Python callers alike)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from datasetgan.core.errors import UserError
from datasetgan.core.options import setting
from datasetgan.interpreter.config import InterpreterConfig

# The assistant retrains after every saved label, so it trains briefly: the demo's interpreter
# settings (every tap and the image, class weights, a large batch at a high rate), fewer members
# and pixels, and a cap on the batches; docs/ANNOTATE.md has the time from a label to a suggestion.
ASSIST_INTERPRETER = InterpreterConfig(members=4, pixels_per_image=2000, class_weight_power=0.25,
                                       layers=("all", "img"), min_epochs=30, max_epochs=30, batch_size=512,
                                       lr=0.003, max_steps=600)

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine only."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AnnotateConfig:
    """The web annotator: where it listens, what it labels, and how it assists."""

    host: str = setting("127.0.0.1", "address to listen on; anything but a loopback address lets other "
                                     "machines read and write the labels")
    port: int = setting(8765, "port to listen on (0: any free port)")
    open: bool = setting(False, "open the page in the default web browser")
    task: Literal["auto", "segmentation", "keypoints"] = setting(
        "auto", "what to label (auto: keypoints when the spec names keypoints and no classes)")
    assist: bool = setting(True, "train the interpreter in the background once enough samples are labelled, "
                                 "for 'suggest' and 'next'")
    min_labels: int = setting(2, "labelled samples before the assistant trains", metavar="N")
    regions: int = setting(12, "parts per sample for region fill (k-means clusters of the generator's "
                                "features)", metavar="K")
    uncertain_above: float = setting(0.15, "suggest: hatch the pixels whose Jensen-Shannon divergence (nats) "
                                           "exceeds this", metavar="JS")
    # "next" after labels exist: the most uncertain of the unlabelled samples whose distance to the
    # labelled ones is above this quantile of such distances: mostly diversity, with uncertainty choosing
    # among the far ones; weighing uncertainty more did worse on the demo domain (docs/ANNOTATE.md).
    next_diverse_quantile: float = 0.9
    # The assistant's interpreter (preset key ``interpreter:``, train-interpreter's keys).
    interpreter: InterpreterConfig = ASSIST_INTERPRETER

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: must be in 0..65535")
        if self.min_labels < 2:
            raise UserError(f"--min-labels {self.min_labels}: the interpreter needs at least 2 labelled samples")
        if not 2 <= self.regions <= 255:
            raise UserError(f"--regions {self.regions}: must be in 2..255")
        if not self.uncertain_above >= 0:
            raise UserError(f"--uncertain-above {self.uncertain_above}: must be >= 0")
        if not 0 <= self.next_diverse_quantile < 1:
            raise UserError(f"next_diverse_quantile {self.next_diverse_quantile}: must be in [0, 1)")
        if not self.host:
            raise UserError("--host: give an address, e.g. 127.0.0.1")
