"""Model-assisted labelling: the generator and the style interpreter behind the page.

``Assistant`` holds the generator the samples were made with and, in one
background thread:

- trains the interpreter (in memory, nothing written) on the labels saved so
  far once ``min_labels`` samples are labelled, and again whenever a label is
  saved (a training in progress finishes first; then the newest labels are
  taken, so a burst of saves costs one more training);
- after each training, scores every unlabelled sample's uncertainty (the
  mean of its top 10% Jensen-Shannon divergences, as ``synthesize`` filters).

On request it

- suggests labels for a sample (``suggest``) from the interpreter of the
  current labels (waiting for it if it is still training), with the pixels
  whose divergence exceeds ``uncertain_above`` marked;
- picks the sample to label next (``next_stem``): before the interpreter exists, the one
  farthest in generator-feature space from every labelled one (k-center
  greedy, ``generator.selection``); after, the most uncertain of the
  unlabelled samples that lie far from the labelled ones (beyond the
  ``next_diverse_quantile`` of their distances), so that the picks stay
  diverse rather than piling on one kind of hard sample;
- groups a sample's pixels into parts for region fill (``regions``, once
  per sample).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from datasetgan.annotate.config import AnnotateConfig
from datasetgan.annotate.regions import part_clusters
from datasetgan.annotate.store import LabelStore
from datasetgan.core.errors import UserError
from datasetgan.generator import Generator
from datasetgan.generator.selection import descriptors, k_center_greedy
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.data import SamplesFolder, TrainingData, build_training_data, open_generator
from datasetgan.interpreter.train import train_ensemble

REGION_CACHE_BYTES = 64 << 20


class NotReady(RuntimeError):
    """The assistant cannot answer yet (too few labels, off, or no generator); the message says why."""


@dataclass
class Suggestion:
    """``labels [H, W]`` uint8 class ids and ``uncertain [H, W]`` bool (segmentation), or
    ``keypoints [K, 3]`` (x, y, visible); ``version``: the labels version it was trained on."""

    version: int
    labelled: int
    labels: np.ndarray | None = None
    uncertain: np.ndarray | None = None
    keypoints: np.ndarray | None = None


def labelled_subset(folder: SamplesFolder, stems: list[str]) -> SamplesFolder:
    """The samples folder restricted to ``stems`` (so that training sees labelled samples only)."""
    index = [folder.stems.index(s) for s in stems]
    return dataclasses.replace(
        folder, stems=list(stems), ws=folder.ws[index],
        images=tuple(folder.images[i] for i in index) if folder.images else (),
        noise={k: v[index] for k, v in folder.noise.items()})


def train_in_memory(data: TrainingData, fingerprint: str, folder: SamplesFolder, store: LabelStore,
                    config: InterpreterConfig, device: torch.device) -> Interpreter:
    """An interpreter trained on ``data`` (``build_training_data`` of the labelled samples of ``folder``)."""
    outputs = store.spec.num_classes if store.task == "segmentation" else store.spec.num_keypoints
    model, stats = train_ensemble(data.bank, data.pixels, outputs, store.task, config, device, quiet=True)
    return Interpreter(model=model, task=store.task, spec=store.spec, layers=data.selected.names,
                       upsample=config.upsample, out_size=data.out_size, generator_fingerprint=fingerprint,
                       generator_checkpoint=folder.checkpoint, visibility_threshold=config.visibility_threshold,
                       training={"labelled": data.stems, "pixels": len(data.pixels), "steps": stats.steps})


class Assistant:
    """The generator, the background interpreter and the caches of one annotation session."""

    def __init__(self, store: LabelStore, config: AnnotateConfig, generator: str | None = None,
                 device: torch.device | str = "cpu"):
        self.store, self.config = store, config
        self.generator_path = generator
        self.device = torch.device(device)
        self._G: Generator | None = None
        self._fingerprint = ""
        self._generator_error: str | None = None
        self._render_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.model: Interpreter | None = None
        self.model_version = -1                  # the labels version self.model was trained on
        self.model_labelled = 0
        self.training_version: int | None = None
        self.last_error: str | None = None
        self.last_seconds: float | None = None
        self._scores: dict[str, float] = {}
        self._descriptors: torch.Tensor | None = None
        self._regions: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._regions_lock = threading.Lock()
        self._descriptors_lock = threading.Lock()
        self._failed_version = -1                # the labels version whose training failed

    # --- the generator ----------------------------------------------------------------------------

    def generator(self) -> Generator:
        """The samples' generator (loaded on first use; ``NotReady`` if it cannot be)."""
        with self._render_lock:
            if self._G is None and self._generator_error is None:
                try:
                    self._G, self._fingerprint = open_generator(self.store.folder, self.generator_path, self.device)
                except UserError as exc:
                    self._generator_error = str(exc)
            if self._G is None:
                raise NotReady(f"no generator: {self._generator_error} (pass --generator)")
            return self._G

    @torch.no_grad()
    def render(self, stem: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(img [1, C, R, R], feature maps [1, C_i, R_i, R_i])`` of one sample, as it was made."""
        G = self.generator()
        i = self.store.index[self.store.check(stem)]
        folder = self.store.folder
        with self._render_lock:
            w = folder.ws[i:i + 1].to(self.device)
            return G.synthesis(w, return_features=True, **folder.synthesis_kwargs(i, self.device))

    # --- region fill ------------------------------------------------------------------------------

    def regions(self, stem: str) -> np.ndarray:
        """Part ids ``[H, W]`` uint8 of a sample at its label size (computed once, then cached)."""
        with self._regions_lock:
            if stem in self._regions:
                self._regions.move_to_end(stem)
                return self._regions[stem]
        img, maps = self.render(stem)
        parts = part_clusters([*maps, img], self.store.image_size(stem), self.config.regions,
                              seed=self.store.index[stem])
        with self._regions_lock:
            self._regions[stem] = parts
            while sum(p.nbytes for p in self._regions.values()) > REGION_CACHE_BYTES and len(self._regions) > 1:
                self._regions.popitem(last=False)
        return parts

    # --- "next" -----------------------------------------------------------------------------------

    def sample_descriptors(self) -> torch.Tensor:
        """``[N, D]``: every sample's pooled generator features (``generator.selection.descriptors``)."""
        with self._descriptors_lock:
            if self._descriptors is None:
                self._descriptors = torch.cat([descriptors(self.render(stem)[1]) for stem in self.store.stems])
            return self._descriptors

    def next_stem(self) -> tuple[str | None, str]:
        """``(stem, why)``: the unlabelled sample worth labelling next (``None`` when all are labelled);
        ``why`` is ``"uncertain"`` or ``"diverse"``."""
        labelled = set(self.store.labelled())
        unlabelled = [i for i, s in enumerate(self.store.stems) if s not in labelled]
        if not unlabelled:
            return None, "all labelled"
        try:
            points = self.sample_descriptors()
        except NotReady:
            return self.store.stems[unlabelled[0]], "first unlabelled (no generator)"
        chosen = [self.store.index[s] for s in labelled]
        scores = dict(self._scores)
        if chosen and scores:
            far = torch.cdist(points[unlabelled].double(), points[chosen].double()).min(dim=1).values
            cut = float(torch.quantile(far, self.config.next_diverse_quantile))
            candidates = [(scores[self.store.stems[i]], -i) for i, d in zip(unlabelled, far.tolist())
                          if d >= cut and self.store.stems[i] in scores]
            if candidates:
                return self.store.stems[-max(candidates)[1]], "uncertain"
        pick = k_center_greedy(points, 1, chosen=chosen)
        return self.store.stems[pick[0]], "diverse"

    # --- suggestions ------------------------------------------------------------------------------

    def _check_can_train(self) -> int:
        if not self.config.assist:
            raise NotReady("the assistant is off (started with --no-assist)")
        labelled = len(self.store.labelled())
        if labelled < self.config.min_labels:
            raise NotReady(f"suggestions start once {self.config.min_labels} samples are labelled "
                           f"({labelled} so far)")
        self.generator()
        return labelled

    def wait_for_model(self, timeout: float) -> tuple[Interpreter, int, int]:
        """``(interpreter, labels version, labelled samples)``: the interpreter trained on the labels
        as they are now (waits while it trains)."""
        self._check_can_train()
        wanted = self.store.version
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self.model is None or self.model_version < wanted:
                if self._failed_version >= wanted and self.training_version is None:
                    raise NotReady(f"the interpreter could not be trained: {self.last_error}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotReady(f"the interpreter for the current labels is not ready after {timeout:g} s")
                self._cond.wait(min(left, 1.0))
            return self.model, self.model_version, self.model_labelled

    @torch.no_grad()
    def predict(self, model: Interpreter, stem: str):
        img, maps = self.render(stem)
        return model.predict(maps, img)

    def suggest(self, stem: str, timeout: float = 600.0) -> Suggestion:
        """Labels (or keypoints) for ``stem`` from the interpreter of the current labels."""
        self.store.check(stem)
        model, version, labelled = self.wait_for_model(timeout)
        pred = self.predict(model, stem)
        if self.store.task == "keypoints":
            return Suggestion(version, labelled, keypoints=pred.keypoints[0].cpu().numpy().astype(np.float64))
        labels = pred.labels[0].cpu().numpy().astype(np.uint8)
        uncertain = pred.uncertainty[0].cpu().numpy() > self.config.uncertain_above
        return Suggestion(version, labelled, labels=labels, uncertain=uncertain)

    # --- the background thread --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        labelled = len(self.store.labelled())
        with self._cond:
            if not self.config.assist:
                state = "off"
            elif self._generator_error is not None:
                state = "no generator"
            elif self.training_version is not None:
                state = "training"
            elif self.model is not None and self.model_version == self.store.version:
                state = "ready"
            elif labelled < self.config.min_labels:
                state = "waiting for labels"
            else:
                state = "queued"
            return {"state": state, "labelled": labelled, "min_labels": self.config.min_labels,
                    "version": self.store.version, "model_version": self.model_version,
                    "model_labelled": self.model_labelled, "error": self.last_error or self._generator_error,
                    "train_seconds": self.last_seconds, "scored": len(self._scores)}

    def notify(self) -> None:
        """A label was saved: wake the trainer."""
        with self._cond:
            self._cond.notify_all()

    def start(self) -> "Assistant":
        if self.config.assist and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="datasetgan-assistant", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _wanted(self) -> int | None:
        """The labels version to train on now, or ``None`` (called with ``_cond`` held)."""
        version = self.store.version
        if self.model_version == version and self.model is not None:
            return None
        if self._failed_version == version:
            return None
        if len(self.store.labelled()) < self.config.min_labels:
            return None
        return version

    def _loop(self) -> None:
        try:
            self.sample_descriptors()      # for "next", while the person looks at the first sample
        except NotReady:
            pass
        while True:
            with self._cond:
                while not self._stop and (version := self._wanted()) is None:
                    self._cond.wait(1.0)
                if self._stop:
                    return
                self.training_version = version
            self._run(version)

    def refresh(self, score: bool = True) -> bool:
        """What the background thread does after a save, in the calling thread: train on the labels
        as they are now, then (``score``) score the unlabelled samples. False when there is nothing
        to train (too few labels, or the interpreter is already that of the current labels)."""
        with self._cond:
            version = self._wanted()
            if version is None:
                return False
            self.training_version = version
        self._run(version, score)
        return True

    def _run(self, version: int, score: bool = True) -> None:
        try:
            start = time.monotonic()
            model, labelled = self._train()
            with self._cond:
                self.model, self.model_version, self.model_labelled = model, version, labelled
                self.last_error, self.last_seconds = None, round(time.monotonic() - start, 3)
                self.training_version = None
                self._cond.notify_all()
            if score:
                self._score(model, version)
        except (NotReady, UserError) as exc:
            self._failed(version, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the page's assistant
            traceback.print_exc()
            self._failed(version, f"{type(exc).__name__}: {exc}")

    def _failed(self, version: int, message: str) -> None:
        with self._cond:
            self.last_error, self._failed_version = message, version
            self.training_version = None
            self._cond.notify_all()

    def _train(self) -> tuple[Interpreter, int]:
        G = self.generator()
        stems = self.store.labelled()
        folder = labelled_subset(self.store.folder, stems)
        store, config = self.store, self.config.interpreter
        with self._render_lock:
            data = build_training_data(G, folder, store.labels, store.spec, store.task, config, self.device,
                                       quiet=True)
        model = train_in_memory(data, self._fingerprint, folder, store, config, self.device)
        return model.bind(G), len(stems)

    def _score(self, model: Interpreter, version: int) -> None:
        """Uncertainty scores of the unlabelled samples (stops early once newer labels arrive)."""
        labelled = set(self.store.labelled())
        scores: dict[str, float] = {}
        for stem in self.store.stems:
            if stem in labelled:
                continue
            if self.store.version != version or self._stop:
                break
            scores[stem] = float(self.predict(model, stem).scores[0])
        else:
            with self._cond:
                self._scores = scores
            return
        if scores:
            with self._cond:
                self._scores = {**self._scores, **scores}
