"""A trained interpreter on disk: ``config.json`` + ``model.safetensors``.

``config.json`` holds everything needed to use the weights: the task, the
label spec, the feature taps and upsampling mode, the label resolution, the
ensemble's shape, the training settings and statistics, and the fingerprint
of the generator whose features it reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

from datasetgan.core.errors import CheckpointError, UserError
from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.core.labels import LabelSpec
from datasetgan.core.weights import read_weights
from datasetgan.features import FeatureConfig, SelectedFeatures, select_features
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP

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

    def fingerprint(self) -> str:
        """sha256 of this interpreter's config and weights (for dataset.json)."""
        import hashlib
        h = hashlib.sha256(json.dumps(self._config_dict(), sort_keys=True).encode())
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def selected_features(self, G, source: str | Path = "--interpreter") -> SelectedFeatures:
        """Check that ``G`` is the generator this interpreter was trained for
        and return its feature selection."""
        from datasetgan.generator import generator_fingerprint
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
