import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from datasetgan.core.errors import UserError
from datasetgan.gan_training.dataset import BatchSource, DataOrder, load_dataset, prepare_image


def test_folder_mixed_formats_recursive_and_skipped(tmp_path):
    root = tmp_path / "data"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.new("RGB", (40, 20), (255, 0, 0)).save(root / "wide.jpg")
    Image.new("L", (16, 16), 128).save(root / "sub" / "grey.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 0)).save(root / "sub" / "deeper" / "clear.png")
    Image.new("P", (16, 16)).save(root / "sub" / "pal.gif")
    Image.new("RGB", (16, 16), (0, 255, 0)).save(root / "sub" / "g.bmp")
    (root / "notes.txt").write_text("not an image")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / ".hidden.png").write_bytes(b"ignored")
    ds = load_dataset(root, 8, quiet=True)
    assert len(ds) == 5 and ds.images.shape == (5, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert sorted(ds.skipped) == ["broken.png", "notes.txt"]
    by_name = dict(zip(ds.names, ds.images))
    assert (by_name["sub/grey.png"] == 128).all()                   # grey replicated to RGB
    assert (by_name["sub/deeper/clear.png"] == 255).all()           # transparent -> white
    assert (by_name["wide.jpg"][0] > 240).all()                     # centre crop of a red image


def test_centre_crop_takes_the_middle():
    a = np.zeros((10, 30, 3), np.uint8)
    a[:, 10:20] = 255                                               # the middle square is white
    out = prepare_image(Image.fromarray(a), 10)
    assert out.shape == (3, 10, 10) and (out == 255).all()


def test_zip_source(tmp_path, image_folder):
    zpath = tmp_path / "data.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for p in sorted(image_folder.iterdir()):
            zf.write(p, f"imgs/{p.name}")
        zf.writestr("__MACOSX/._img000.png", b"junk")
        zf.writestr("readme.txt", b"hello")
    ds = load_dataset(zpath, 16, quiet=True)
    assert len(ds) == 12 and ds.skipped == ["readme.txt"]
    folder = load_dataset(image_folder, 16, quiet=True)
    assert torch.equal(ds.images, folder.images)


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="contains no files"):
        load_dataset(tmp_path / "empty", 16)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    (tmp_path / "junk" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="none of its 2 file"):
        load_dataset(tmp_path / "junk", 16)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a folder or a .zip"):
        load_dataset(tmp_path / "file.txt", 16)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(UserError, match=r"broken\.zip: not a readable \.zip archive"):
        load_dataset(tmp_path / "broken.zip", 16)


def test_data_order_is_a_function_of_seed_epoch_and_position():
    a = DataOrder(10, seed=3)
    seq = torch.cat([a.next(4) for _ in range(6)])                 # crosses epochs
    assert sorted(seq[:10].tolist()) == list(range(10))
    b = DataOrder(10, seed=3)
    b.next(4), b.next(4), b.next(4)
    c = DataOrder(10, seed=3, **b.state())                         # resume mid-epoch 1
    assert torch.equal(torch.cat([c.next(4) for _ in range(3)]), seq[12:])
    assert not torch.equal(DataOrder(10, seed=4).next(10), seq[:10])


def test_flip_doubles_the_data_set(image_folder):
    ds = load_dataset(image_folder, 16, quiet=True)
    order = DataOrder(len(ds), seed=0, flip=True)
    assert order.size == 24
    source = BatchSource(ds, torch.device("cpu"))
    x = source(torch.tensor([0, 12]))
    torch.testing.assert_close(x[1], x[0].flip(-1))
    assert x.min() >= -1 and x.max() <= 1


def test_batch_source_does_not_move_a_batch_already_on_its_device(image_folder):
    # "cuda" and "cuda:0" name one device; treating them as two made the first GPU run pin a GPU
    # tensor. "cpu:0" against the set's "cpu" is the same case on this machine.
    ds = load_dataset(image_folder, 16, quiet=True)
    x = BatchSource(ds, torch.device("cpu", 0))(torch.tensor([0, 1]))
    torch.testing.assert_close(x, BatchSource(ds, torch.device("cpu"))(torch.tensor([0, 1])))
