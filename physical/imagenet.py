"""ImageNet's devkit ground truth for a flat validation folder (ILSVRC2012_val_00000001.JPEG, …).

`ILSVRC2012_validation_ground_truth.txt` (devkit data/ folder) holds one ILSVRC2012_ID per line,
line n for ILSVRC2012_val_<n:08d>.JPEG. Those IDs (1-1000) follow the devkit's own synset order,
which is NOT the sorted-wnid order of the models' outputs: the ID → wnid table is in the devkit's
`meta.mat` (next to the ground-truth file), read with scipy.io. Without meta.mat, give a
`--labels` CSV (file,wnid) instead — the mapping is not bundled here.
"""
from __future__ import annotations

import os

from physical.errors import PhysicalError

GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


def is_devkit_ground_truth(path: str) -> bool:
    return os.path.basename(path) == GROUND_TRUTH


def devkit_wnids(meta_path: str) -> dict[int, str]:
    """ILSVRC2012_ID → wnid of the 1000 leaf synsets in the devkit's meta.mat."""
    import scipy.io

    try:
        synsets = scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"]
    except (OSError, ValueError, KeyError) as exc:
        raise PhysicalError(f"cannot read the devkit's {meta_path} ({exc})") from None
    out = {}
    for s in synsets:
        if int(s["num_children"]) == 0:
            out[int(s["ILSVRC2012_ID"])] = str(s["WNID"])
    if len(out) != 1000:
        raise PhysicalError(f"{meta_path} lists {len(out)} leaf synsets, not ImageNet-1k's 1000")
    return out


def devkit_labels(path: str, table) -> dict[str, int]:
    """{file name: class index} for the flat validation folder, from the devkit's two files."""
    meta = os.path.join(os.path.dirname(path) or ".", "meta.mat")
    if not os.path.isfile(meta):
        raise PhysicalError(f"{path} numbers classes in the devkit's order: its meta.mat must sit beside it "
                            f"({meta} is missing); or give a --labels CSV of file,wnid rows")
    wnids = devkit_wnids(meta)
    labels = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            if not text.isdigit() or int(text) not in wnids:
                raise PhysicalError(f"{path}:{n}: expected an ILSVRC2012_ID 1-1000, got {text!r}")
            index = table.resolve(wnids[int(text)])
            if index is None:
                raise PhysicalError(f"{path}:{n}: the model has no class {wnids[int(text)]}")
            stem = f"ILSVRC2012_val_{n:08d}"
            for name in (stem, stem + ".JPEG"):
                labels[name] = index
    return labels
