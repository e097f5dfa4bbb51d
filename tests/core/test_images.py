import numpy as np
import torch
from PIL import Image

from datasetgan.core import images


def test_to_uint8_matches_nvidia_conversion():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0]).view(1, 1, 1, 5).repeat(1, 3, 1, 1)
    out = images.to_uint8(x)
    assert out.shape == (1, 1, 5, 3)
    assert out[0, 0, :, 0].tolist() == [0, 64, 128, 255, 255]


def test_indexed_png_keeps_ids_and_palette(tmp_path):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    images.save_png(tmp_path / "l.png", labels, palette=palette)
    img = Image.open(tmp_path / "l.png")
    assert img.mode == "P"
    assert np.array_equal(np.array(img), labels)
    assert img.getpalette()[:9] == [0, 0, 0, 255, 0, 0, 0, 255, 0]


def test_grid_and_overlay_shapes():
    tiles = [np.zeros((4, 4, 3), np.uint8)] * 5
    sheet = images.grid(tiles, columns=3, pad=1)
    assert sheet.shape == (2 * 5 + 1, 3 * 5 + 1, 3)
    over = images.overlay(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.int64), [[0, 0, 0], [200, 0, 0]])
    assert over[0, 0].tolist() == [100, 0, 0]


def test_unlabelled_pixels_are_white():
    palette = [[0, 0, 0], [200, 0, 0]]
    labels = np.array([[0, 1, 255, 7]])
    assert images.colourize(labels, palette).tolist() == [[[0, 0, 0], [200, 0, 0], [255, 255, 255], [0, 0, 0]]]
    assert images.colourize(labels, [[i, i, i] for i in range(256)])[0, 2].tolist() == [255, 255, 255]
    assert images.colourize(labels, [[9, 9, 9]] * 256)[0, 2].tolist() == [9, 9, 9]   # the palette's own colour
