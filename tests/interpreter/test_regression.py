"""Stored-output regression test: an interpreter's predictions for fixed seeds.

An ensemble with seeded random weights (there is no bundled interpreter, and
training one would make the test slow) reads the bundled demo generator's
features of fixed seeds; its prediction is compared with values stored
below, so that any change of the numerics of feature selection,
upsampling, the ensemble or the fast prediction path shows up. Its
BatchNorm statistics are those of these very pixels, as training leaves
them, so that every layer works at the scale of a trained one.

Stored: for segmentation, a 3x3 patch of labels (exact) and of uncertainty,
each image's mean uncertainty and its score; for keypoints, a patch of the
first heatmap, the decoded keypoints, the mean uncertainty and the score.
The tolerance is float32 on a CPU at one thread (``conftest.py``): far above
rounding (another CPU, library version or summation order), far below what a
change of numerics moves. Keypoints get a looser one: the sub-pixel
refinement divides by a small curvature. When a change of numerics is
meant, print the new values with ``python -m tests.interpreter.test_regression``
and paste them here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from datasetgan.features import FeatureConfig, select_features, upsample_concat
from datasetgan.generator import Generator, generator_fingerprint, load_generator, z_from_seeds
from datasetgan.interpreter.artifact import Interpreter
from datasetgan.interpreter.model import EnsembleConfig, EnsembleMLP
from datasetgan.interpreter.predict import Prediction
from datasetgan.labels import LabelSpec

SEEDS = (0, 1)
TRUNCATION = 0.7
LAYERS = ("all", "img")        # the demo's taps
MODEL_SEED = 0
MEMBERS = 3
PATCH = (slice(None), slice(30, 33), slice(30, 33))   # [N, 3, 3] at the centre of 64x64
TOLERANCE = dict(atol=1e-4, rtol=1e-4)
KEYPOINT_TOLERANCE = dict(atol=1e-3, rtol=0.0)       # in pixels

EXPECTED_SEGMENTATION = {
    "labels": [
        [[2, 2, 2], [2, 2, 2], [2, 2, 5]],
        [[0, 0, 3], [0, 0, 0], [0, 0, 0]],
    ],
    "uncertainty": [
        [[0.224294, 0.184172, 0.174368], [0.191846, 0.159102, 0.152267], [0.198509, 0.174859, 0.16847]],
        [[0.210711, 0.162371, 0.149269], [0.216207, 0.182127, 0.181503], [0.231535, 0.227279, 0.234216]],
    ],
    "mean_uncertainty": [0.225127, 0.207293],
    "scores": [0.393617, 0.384164],
}
EXPECTED_KEYPOINTS = {
    "heatmap": [
        [[0.814638, 0.677948, 0.523429], [0.824178, 0.753696, 0.608448], [0.820147, 0.760048, 0.613174]],
        [[0.582667, 0.698025, 0.735693], [0.478366, 0.590388, 0.63385], [0.337604, 0.410872, 0.424123]],
    ],
    "keypoints": [
        [[24.146103, 24.285028, 1.0], [17.714191, 43.487053, 1.0], [11.138675, 0.923658, 1.0],
         [6.792038, 60.459259, 1.0], [60.739418, 40.028126, 1.0], [63.0, 51.30238, 1.0],
         [50.782619, 44.369507, 1.0], [2.132659, 55.430557, 1.0]],
        [[27.30983, 23.240076, 1.0], [34.160248, 34.857433, 1.0], [0.0, 16.721779, 1.0],
         [60.193783, 22.74892, 1.0], [39.243752, 37.772297, 1.0], [23.074152, 63.0, 1.0],
         [38.438221, 30.110138, 1.0], [26.591864, 23.565128, 1.0]],
    ],
    "mean_uncertainty": [0.632239, 0.557009],
    "scores": [1.397252, 1.109162],
}


def demo_generator() -> Generator:
    """The generator bundled for the demo (64x64, own format)."""
    return load_generator(Path(str(resources.files("datasetgan") / "assets" / "demo_generator"))).eval()


@torch.no_grad()
def features(G: Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The ``SEEDS``' images ``[N, 3, 64, 64]`` and feature maps ``[N, C_i, R_i, R_i]`` (stored noise)."""
    ws = G.mapping(z_from_seeds(SEEDS, G.z_dim), None, truncation_psi=TRUNCATION, update_w_avg=False)
    return G.synthesis(ws, noise_mode="const", return_features=True)


@torch.no_grad()
def seeded_interpreter(G: Generator, img: torch.Tensor, maps: list[torch.Tensor], task: str,
                       num_outputs: int) -> Interpreter:
    """An interpreter over ``G``'s ``LAYERS`` with weights drawn from ``MODEL_SEED``
    (``N(0, 1 / fan_in)``, biases and BatchNorm affines near their start) and
    BatchNorm statistics of the pixels of ``img``/``maps``."""
    selected = select_features(G.feature_spec, FeatureConfig(LAYERS, "bilinear"))
    gen = torch.Generator().manual_seed(MODEL_SEED)
    model = EnsembleMLP(EnsembleConfig(selected.width, num_outputs, MEMBERS), generator=gen).eval()
    for i in (1, 2, 3):
        weight = getattr(model, f"w{i}")
        weight.normal_(0.0, weight.shape[1] ** -0.5, generator=gen)
        getattr(model, f"b{i}").normal_(0.0, 0.1, generator=gen)
    for i in (1, 2):
        getattr(model, f"bn{i}_weight").normal_(1.0, 0.1, generator=gen)
        getattr(model, f"bn{i}_bias").normal_(0.0, 0.1, generator=gen)
    # BatchNorm statistics of these pixels, layer by layer (each BatchNorm normalises the one before).
    pixels = upsample_concat(selected.pick(maps, img), (64, 64), "bilinear").permute(0, 2, 3, 1)
    pixels = pixels.reshape(1, -1, selected.width)
    h = torch.relu(model.first_linear(pixels.expand(MEMBERS, -1, -1)))
    model.bn1_mean.copy_(h.mean(dim=1))
    model.bn1_var.copy_(h.var(dim=1))
    h = torch.relu(torch.baddbmm(model.b2.unsqueeze(1), model._bn(h, 1, None), model.w2))
    model.bn2_mean.copy_(h.mean(dim=1))
    model.bn2_var.copy_(h.var(dim=1))
    names = tuple(f"c{i}" for i in range(num_outputs))
    spec = LabelSpec(classes=names) if task == "segmentation" else LabelSpec(classes=(), keypoints=names)
    return Interpreter(model=model, task=task, spec=spec, layers=LAYERS, upsample="bilinear", out_size=(64, 64),
                       generator_fingerprint=generator_fingerprint(G))


def run(task: str, num_outputs: int) -> Prediction:
    """The seeded interpreter's prediction for ``SEEDS`` (fast path, float32)."""
    G = demo_generator()
    img, maps = features(G)
    return seeded_interpreter(G, img, maps, task, num_outputs).bind(G).predict(maps, img)


def segmentation_numbers(pred: Prediction) -> dict[str, torch.Tensor]:
    return {"labels": pred.labels[PATCH], "uncertainty": pred.uncertainty[PATCH],
            "mean_uncertainty": pred.uncertainty.mean(dim=(1, 2)), "scores": pred.scores}


def keypoint_numbers(pred: Prediction) -> dict[str, torch.Tensor]:
    return {"heatmap": pred.heatmaps[:, 0][PATCH], "keypoints": pred.keypoints,
            "mean_uncertainty": pred.uncertainty.mean(dim=(1, 2)), "scores": pred.scores}


def test_segmentation_prediction_matches_the_stored_numbers():
    got = segmentation_numbers(run("segmentation", 10))
    assert got["labels"].tolist() == EXPECTED_SEGMENTATION["labels"], "labels"
    for key in ("uncertainty", "mean_uncertainty", "scores"):
        torch.testing.assert_close(got[key], torch.tensor(EXPECTED_SEGMENTATION[key]), **TOLERANCE, msg=key)


def test_keypoint_prediction_matches_the_stored_numbers():
    got = keypoint_numbers(run("keypoints", 8))
    torch.testing.assert_close(got["keypoints"], torch.tensor(EXPECTED_KEYPOINTS["keypoints"]),
                               **KEYPOINT_TOLERANCE)
    for key in ("heatmap", "mean_uncertainty", "scores"):
        torch.testing.assert_close(got[key], torch.tensor(EXPECTED_KEYPOINTS[key]), **TOLERANCE, msg=key)


def _rounded(t: torch.Tensor):
    """Nested lists of ``t`` rounded to 6 decimals (far below the tolerance); integers as they are."""
    if t.dim():
        return [_rounded(r) for r in t]
    return int(t) if not t.is_floating_point() else round(float(t), 6)


def _print_expected() -> None:
    torch.set_num_threads(1)
    for name, numbers in (("EXPECTED_SEGMENTATION", segmentation_numbers(run("segmentation", 10))),
                          ("EXPECTED_KEYPOINTS", keypoint_numbers(run("keypoints", 8)))):
        print(f"{name} = {{")
        for key, value in numbers.items():
            per_image = _rounded(value)
            if not isinstance(per_image[0], list):
                print(f'    "{key}": {per_image},')
                continue
            print(f'    "{key}": [')
            for image in per_image:
                lines = [""]
                for part in map(str, image):   # break lines between entries, never inside one
                    if lines[-1] and len(lines[-1]) + len(part) > 100:
                        lines.append("")
                    lines[-1] += (", " if lines[-1] else "") + part
                print("        [" + ",\n         ".join(lines) + "],")
            print("    ],")
        print("}")


if __name__ == "__main__":
    _print_expected()
