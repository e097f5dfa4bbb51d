"""``train_interpreter``: a samples folder and its labels in, an interpreter folder out.

Resumable: the training state is kept in ``OUT/.training-state.safetensors``
every few minutes and on Ctrl-C or SIGTERM, and the same call started again
continues it to the same weights (``train.py``). The state file is removed
once the interpreter is saved.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from datasetgan.core.config import config_to_dict
from datasetgan.core.errors import UserError
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.config import InterpreterConfig
from datasetgan.interpreter.data import build_training_data, detect_task, open_generator, read_samples_folder
from datasetgan.interpreter.train import Resume, train_ensemble
from datasetgan.labels import LabelSpec

STATE_FILE = ".training-state.safetensors"
STATE_EVERY_SECONDS = 300.0


def train_interpreter(samples: str | Path, labels: str | Path, spec: LabelSpec, out: str | Path,
                      config: InterpreterConfig, device: torch.device, task: str = "auto",
                      generator: str | Path | None = None, allow_unlabelled: bool = False,
                      quiet: bool = False) -> Interpreter:
    """Train the ensemble on the labelled samples of ``samples`` and save it in ``out``.

    ``task`` is ``segmentation``, ``keypoints`` or ``auto`` (keypoints when ``labels``
    holds ``.json`` files); ``generator`` defaults to the checkpoint the samples recorded.
    """
    folder = read_samples_folder(samples)
    task = detect_task(Path(labels), task)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: not a folder")
    G, fingerprint = open_generator(folder, generator, device)
    start = time.time()
    data = build_training_data(G, folder, labels, spec, task, config, device, quiet=quiet,
                               allow_unlabelled=allow_unlabelled)
    del G
    num_outputs = spec.num_classes if task == "segmentation" else spec.num_keypoints
    resume = Resume(out / STATE_FILE, every_seconds=STATE_EVERY_SECONDS,
                    key={"generator": fingerprint, "labelled": data.stems, "layers": data.selected.names,
                         "out_size": list(data.out_size)})
    model, stats = train_ensemble(data.bank, data.pixels, num_outputs, task, config, device, quiet=quiet,
                                  resume=resume)
    interpreter = Interpreter(
        model=model, task=task, spec=spec, layers=data.selected.names, upsample=config.upsample,
        out_size=data.out_size, generator_fingerprint=fingerprint,
        generator_checkpoint=str(generator or folder.checkpoint),
        visibility_threshold=config.visibility_threshold,
        training={"config": config_to_dict(config), "labelled": data.stems, "pixels": len(data.pixels),
                  "feature_width": data.bank.width, "feature_bank_bytes": data.bank.nbytes,
                  "steps": stats.steps, "epochs": stats.epochs, "member_stopped_at": stats.stopped_at,
                  "member_best_loss": stats.best_loss, "seconds": round(time.time() - start, 2)})
    interpreter.save(out)
    resume.path.unlink(missing_ok=True)
    return interpreter
