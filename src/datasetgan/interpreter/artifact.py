"""A trained interpreter on disk: ``config.json`` + ``model.safetensors``.

``config.json`` holds everything needed to use the weights: the task, the
label spec, the feature taps and upsampling mode, the label resolution, the
ensemble's shape, the training settings and statistics, and the fingerprint
of the generator whose features it reads.

Used on generated images: ``interp.bind(G)`` checks that ``G`` is that
generator and resolves the taps once, then ``interp.predict(features, img)``
labels what ``G.synthesis(ws, return_features=True)`` returned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.weights import read_weights
from datasetgan.features import FeatureConfig, SelectedFeatures, select_features
from datasetgan.generator import Generator, generator_fingerprint
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP
from datasetgan.interpreter.predict import Prediction, Workspace, predict
from datasetgan.labels import LabelSpec

FORMAT = "datasetgan-interpreter"
VERSION = 1


@dataclass
class Interpreter:
    model: EnsembleMLP
    task: Literal["segmentation", "keypoints"]
    spec: LabelSpec
    layers: tuple[str, ...]
    upsample: Literal["bilinear", "nearest"]
    out_size: tuple[int, int]
    generator_fingerprint: str
    generator_checkpoint: str = ""
    visibility_threshold: float = 0.5
    training: dict[str, Any] = field(default_factory=dict)
    # The taps of the generator given to ``bind``.
    _selection: SelectedFeatures | None = field(default=None, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        """sha256 of this interpreter's config and weights (for dataset.json)."""
        h = hashlib.sha256(json.dumps(self._config_dict(), sort_keys=True).encode())
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def selected_features(self, G: Generator, source: str | Path = "--interpreter") -> SelectedFeatures:
        """Check that ``G`` is the generator this interpreter was trained for
        and return its feature selection (``source`` names the interpreter in errors)."""
        fp = generator_fingerprint(G)
        if fp != self.generator_fingerprint:
            raise UserError(f"{source}: this interpreter was trained for the generator with fingerprint "
                            f"{self.generator_fingerprint[:12]} ({self.generator_checkpoint or 'unknown path'}), "
                            f"but the given generator's fingerprint is {fp[:12]}")
        sel = select_features(G.feature_spec, FeatureConfig(self.layers, self.upsample))
        if sel.width != self.model.config.in_features:
            raise UserError(f"{source}: expects {self.model.config.in_features} feature channels, "
                            f"the generator gives {sel.width}")
        return sel

    def bind(self, G: Generator, source: str | Path = "--interpreter") -> "Interpreter":
        """Check ``G`` (``selected_features``) and keep its feature selection for ``predict``;
        returns this interpreter."""
        self._selection = self.selected_features(G, source)
        return self

    @property
    def selection(self) -> SelectedFeatures:
        """The feature selection of the generator given to ``bind``."""
        if self._selection is None:
            raise RuntimeError("this interpreter is not bound to a generator yet: call interp.bind(G) first")
        return self._selection

    def predict(self, features: Sequence[torch.Tensor], img: torch.Tensor | None = None, *,
                tile_rows: int | None = -1, workspace: Workspace | None = None,
                first_layer_dtype: torch.dtype = torch.float32) -> Prediction:
        """Labels (or keypoints) and uncertainty at ``out_size`` for generated images.

        ``features``: every map ``G.synthesis(ws, return_features=True)`` returned
        (``[N, C_i, R_i, R_i]``, ``G`` the generator given to ``bind``); ``img``: the
        ``[N, C, R, R]`` image it returned, needed when the interpreter reads the image tap.
        The keyword arguments are ``interpreter.predict.predict``'s.
        """
        return predict(self.model, self.selection.pick(features, img), self.out_size, self.upsample, self.task,
                       self.visibility_threshold, tile_rows=tile_rows, workspace=workspace,
                       first_layer_dtype=first_layer_dtype)

    def _config_dict(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "format": FORMAT, "version": VERSION, "task": self.task,
            "label_spec": self.spec.to_dict(),
            "features": {"layers": list(self.layers), "upsample": self.upsample,
                         "out_size": list(self.out_size)},
            "ensemble": {"in_features": cfg.in_features, "num_outputs": cfg.num_outputs,
                         "members": cfg.members, "hidden": list(cfg.hidden)},
            "generator": {"fingerprint": self.generator_fingerprint, "checkpoint": self.generator_checkpoint},
            "visibility_threshold": self.visibility_threshold,
        }

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(directory / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        write_json(directory / "config.json", {**self._config_dict(), "training": self.training})

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> "Interpreter":
        directory = Path(directory)
        cfg_path, weights = directory / "config.json", directory / "model.safetensors"
        for p in (cfg_path, weights):
            if not p.is_file():
                raise CheckpointError(p, "not found; --interpreter must be a folder written by "
                                         "`datasetgan train-interpreter`")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CheckpointError(cfg_path, f"not valid JSON ({exc})") from None
        if cfg.get("format") != FORMAT:
            raise CheckpointError(cfg_path, f"not an interpreter config (format {cfg.get('format')!r})")
        try:
            e = cfg["ensemble"]
            model = EnsembleMLP(EnsembleConfig(int(e["in_features"]), int(e["num_outputs"]),
                                               int(e["members"]), tuple(int(h) for h in e["hidden"])))
            state = read_weights(weights)
            model.load_state_dict(state)
            feats = cfg["features"]
            return cls(model=model.to(device).eval(), task=cfg["task"],
                       spec=LabelSpec.from_dict(cfg["label_spec"], where=str(cfg_path)),
                       layers=tuple(feats["layers"]), upsample=feats["upsample"],
                       out_size=tuple(feats["out_size"]),
                       generator_fingerprint=cfg["generator"]["fingerprint"],
                       generator_checkpoint=cfg["generator"].get("checkpoint", ""),
                       visibility_threshold=float(cfg.get("visibility_threshold", 0.5)),
                       training=cfg.get("training", {}))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(directory, f"damaged interpreter ({type(exc).__name__}: {exc})") from None
