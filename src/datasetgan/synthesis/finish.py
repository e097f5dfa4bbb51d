"""Finishing a data set: drop the most uncertain candidates and write the final files.

From the staged files of every seed (``run.py``), the kept ones are placed under
``images/`` and ``labels/`` (hard links, so nothing is copied) or written into
WebDataset shards (``shards.py``), then ``manifest.jsonl``, the COCO keypoints,
the contact sheet and ``index.html``, and ``dataset.json`` last: its presence
means the data set is complete. Every file is written atomically, so a
finishing step that is interrupted and started again writes the same files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from datasetgan.core.fileio import atomic_path, write_json
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.labels import IGNORE, LabelSpec, write_keypoints
from datasetgan.synthesis.config import SynthesisConfig
from datasetgan.synthesis.outputs import write_coco_keypoints, write_contact_sheet
from datasetgan.synthesis.shards import SHARD_DIR, SHARD_PATTERN, sample_json, shard_count, shard_path, write_shard

FORMAT = "datasetgan-dataset"


def unlabelled_id(spec: LabelSpec) -> int:
    """The id that unlabelled pixels carry in the label files: the spec's ``ignore_index``, else ``IGNORE``."""
    return IGNORE if spec.ignore_index is None else spec.ignore_index


def select(records: list[dict], keep: int) -> tuple[list[dict], list[dict]]:
    """Drop the most uncertain: sort by (score, seed), keep the first ``keep``.
    Returns ``(kept, dropped)``, each in seed order."""
    ranked = sorted(records, key=lambda r: (r["uncertainty"], r["seed"]))
    kept = sorted(ranked[:keep], key=lambda r: r["seed"])
    dropped = sorted(ranked[keep:], key=lambda r: r["seed"])
    return kept, dropped


def _place(src: Path, dst: Path) -> None:
    """Put a staged file under its final name atomically: a hard link under a
    temporary name renamed onto ``dst`` (a copy where links are not possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):  # placed by an interrupted finalise
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    try:
        os.link(src, tmp)
    except FileExistsError:  # left by an interrupted run of this process id
        tmp.unlink()
        os.link(src, tmp)
    except OSError:
        with atomic_path(dst) as copy:
            shutil.copyfile(src, copy)
        return
    os.replace(tmp, dst)
    if tmp.exists():  # rename() between two links of one file does nothing
        tmp.unlink()


def _write_shards(out: Path, staging: Path, manifest: list[dict], shard_size: int, task: str) -> None:
    """The kept samples as tar shards, ``shard_size`` each; a shard that exists (written
    whole, under a temporary name first) was written by an interrupted finishing step."""
    for index in range(shard_count(len(manifest), shard_size)):
        path = out / shard_path(index)
        if path.exists():
            continue
        members: list[tuple[str, Path | bytes]] = []
        for entry in manifest[index * shard_size:(index + 1) * shard_size]:
            key = entry["key"]
            members.append((f"{key}.png", staging / f"{key}.image.png"))
            if task == "segmentation":
                members.append((f"{key}.label.png", staging / f"{key}.label.png"))
            members.append((f"{key}.json", sample_json(entry)))
        write_shard(path, members)


def finalise(out: Path, staging: Path, records: list[dict], interp: Interpreter, config: SynthesisConfig,
             key: dict, generator_checkpoint: str, interpreter_dir: str) -> dict:
    """Write the final files from the staged ones (``records``: every seed's, in seed order),
    ``dataset.json`` last, then remove ``staging``. Started again after an interruption, it
    writes the same files."""
    kept, dropped = select(records, config.keep_count)
    webdataset = config.format == "webdataset"
    manifest = []
    for i, r in enumerate(kept):
        stem = f"{r['seed']:06d}"
        entry = {"seed": r["seed"], "uncertainty": r["uncertainty"]}
        if webdataset:   # the files go into the shards below
            entry["shard"], entry["key"] = shard_path(i // config.shard_size), stem
        else:
            entry["image"] = f"images/{stem}.png"
            _place(staging / f"{stem}.image.png", out / entry["image"])
        if interp.task == "segmentation":
            if not webdataset:
                entry["label"] = f"labels/{stem}.png"
            entry["class_pixels"] = r["class_pixels"]
            if "unlabelled_pixels" in r:
                entry["unlabelled_pixels"] = r["unlabelled_pixels"]
            if not webdataset:
                _place(staging / f"{stem}.label.png", out / entry["label"])
        else:
            if not webdataset:
                entry["label"] = f"labels/{stem}.json"
            entry["keypoints"] = r["keypoints"]
            if not webdataset:
                write_keypoints(out / entry["label"], r["keypoints"], interp.spec)
        manifest.append(entry)
    if webdataset:
        _write_shards(out, staging, manifest, config.shard_size, interp.task)
    with atomic_path(out / "manifest.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(e) + "\n" for e in manifest), encoding="utf-8")
    if interp.task == "keypoints":
        write_coco_keypoints(out / "keypoints_coco.json", manifest, interp.spec, interp.out_size)

    def staged_files(entry: dict) -> tuple[Path, Path | None]:
        stem = entry["key"]
        return staging / f"{stem}.image.png", staging / f"{stem}.label.png" if interp.task == "segmentation" else None
    write_contact_sheet(out, manifest, interp.spec, interp.task, [r["seed"] for r in dropped],
                        files=staged_files if webdataset else None)
    unlabelled = {}
    if config.ignore_pixels_above is not None or interp.spec.ignore_index is not None:
        unlabelled["ignore_index"] = unlabelled_id(interp.spec)
    if config.ignore_pixels_above is not None:
        unlabelled["unlabelled"] = {
            "above_js": config.ignore_pixels_above,
            "pixel_fraction": round(sum(e["unlabelled_pixels"] for e in manifest)
                                    / max(1, len(manifest) * math.prod(interp.out_size)), 6)}
    info = {
        "format": FORMAT, "version": 1, "task": interp.task,
        "classes": list(interp.spec.classes), "palette": [list(c) for c in interp.spec.palette],
        "keypoints": list(interp.spec.keypoints or []), **unlabelled,
        "keypoint_convention": "pixels; (0, 0) is the centre of the top-left pixel",
        "generator": {"checkpoint": generator_checkpoint, "fingerprint": key["generator"]},
        "interpreter": {"path": interpreter_dir, "fingerprint": key["interpreter"]},
        "seeds": {"start": config.seed_start, "n": config.num_images}, "kept": len(kept),
        "dropped_seeds": [r["seed"] for r in dropped],
        "truncation": config.truncation, "truncation_cutoff": config.truncation_cutoff,
        "drop_uncertain": config.drop_uncertain, "first_layer_precision": key.get("first_layer", "float32"),
        "uncertainty": "mean of the top 10% per-pixel "
        + ("Jensen-Shannon divergence of the ensemble" if interp.task == "segmentation"
           else "ensemble variance of the heatmaps"),
        "files": {"manifest": "manifest.jsonl", "contact_sheet": "contact_sheet.png", "report": "index.html",
                  **({"coco_keypoints": "keypoints_coco.json"} if interp.task == "keypoints" else {}),
                  **({"shards": SHARD_DIR + "/"} if webdataset else {})},
        **({"layout": "webdataset",
            "shards": {"pattern": f"{SHARD_DIR}/{SHARD_PATTERN}", "count": shard_count(len(kept), config.shard_size),
                       "samples_per_shard": config.shard_size}} if webdataset else {}),
        "run": key,
    }
    write_json(out / "dataset.json", info)  # last: marks the data set complete
    shutil.rmtree(staging, ignore_errors=True)
    return info
