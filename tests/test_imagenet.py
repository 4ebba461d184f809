"""The devkit ground truth: ILSVRC2012_IDs in the devkit's order mapped through meta.mat."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from physical.data import ClassTable, collect
from physical.errors import PhysicalError
from physical.models import imagenet_classes


def write_meta(path, wnids):
    # meta.mat as the devkit has it: a struct array; IDs 1-1000 are the leaves (num_children 0).
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    rows = [(i + 1, w, 0) for i, w in enumerate(wnids)] + [(1001, "n00001740", 3)]
    scipy.io.savemat(path, {"synsets": np.array(rows, dtype=dtype)})


def test_flat_val_folder_with_devkit_ground_truth(tmp_path):
    wnids, names = imagenet_classes()
    table = ClassTable(wnids, names)
    devkit_order = list(reversed(wnids))  # any order but the sorted one shows the mapping is used
    kit = tmp_path / "devkit"
    kit.mkdir()
    write_meta(kit / "meta.mat", devkit_order)
    (kit / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n1000\n490\n")
    val = tmp_path / "val"
    val.mkdir()
    for n in (1, 2, 3):
        Image.new("RGB", (8, 8)).save(val / f"ILSVRC2012_val_{n:08d}.JPEG")
    items, skipped = collect(str(val), table, str(kit / "ILSVRC2012_validation_ground_truth.txt"))
    assert [it.label for it in items] == [table.resolve(devkit_order[0]), table.resolve(devkit_order[999]),
                                          table.resolve(devkit_order[489])]
    assert items[0].label == 999 and not skipped


def test_devkit_ground_truth_without_meta_is_one_clear_error(tmp_path):
    wnids, names = imagenet_classes()
    gt = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    gt.write_text("1\n")
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(PhysicalError, match="meta.mat"):
        collect(str(tmp_path / "val"), ClassTable(wnids, names), str(gt))
