"""``Interpreter.bind(G)`` + ``Interpreter.predict(features, img)``: the fast path on the bound taps."""

from __future__ import annotations

import pytest
import torch

from datasetgan.core.errors import UserError
from datasetgan.features import FeatureConfig, select_features
from datasetgan.generator import generator_fingerprint, z_from_seeds
from datasetgan.interpreter import EnsembleConfig, EnsembleMLP, Interpreter
from datasetgan.interpreter.predict import predict
from datasetgan.labels import LabelSpec
from tests.conftest import make_tiny_generator


def _interpreter(G, layers: tuple[str, ...], task: str) -> Interpreter:
    sel = select_features(G.feature_spec, FeatureConfig(layers))
    outputs = 3 if task == "segmentation" else 2
    torch.manual_seed(0)
    model = EnsembleMLP(EnsembleConfig(sel.width, outputs, 3, (8, 4))).eval()
    spec = LabelSpec(classes=["a", "b", "c"]) if task == "segmentation" else LabelSpec(classes=["bg"],
                                                                                      keypoints=["p", "q"])
    return Interpreter(model, task, spec, sel.names, "bilinear", (24, 24), generator_fingerprint(G),
                       visibility_threshold=0.3)


@pytest.mark.parametrize("layers", [("all",), ("all", "img")])
@pytest.mark.parametrize("task", ["segmentation", "keypoints"])
def test_predict_equals_the_function_on_the_selected_taps(layers, task):
    G = make_tiny_generator()
    interp = _interpreter(G, layers, task)
    with torch.no_grad():
        img, feats = G.synthesis(G.mapping(z_from_seeds([1, 2], G.z_dim)), return_features=True)
    want = predict(interp.model, interp.selected_features(G).pick(feats, img), interp.out_size, interp.upsample,
                   interp.task, interp.visibility_threshold)
    got = interp.bind(G).predict(feats, img)
    for name, value in vars(want).items():
        assert (value is None and getattr(got, name) is None) or torch.equal(value, getattr(got, name)), name
    assert interp.selection == interp.selected_features(G)


def test_predict_needs_a_bound_generator_and_refuses_another():
    G = make_tiny_generator()
    interp = _interpreter(G, ("all",), "segmentation")
    with torch.no_grad():
        img, feats = G.synthesis(G.mapping(z_from_seeds([0], G.z_dim)), return_features=True)
    with pytest.raises(RuntimeError, match=r"interp\.bind\(G\)"):
        interp.predict(feats, img)
    with pytest.raises(UserError, match="trained for the generator with fingerprint"):
        interp.bind(make_tiny_generator(seed=5), source="interp-dir")
