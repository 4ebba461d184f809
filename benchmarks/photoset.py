"""Real photos for the channel and EOT benchmarks, offline: only what packages already ship.

The bases are the colour photos bundled (no download) with scikit-image (astronaut, chelsea,
coffee, rocket, motorcycle left and right views), scikit-learn (china, flower) and matplotlib
(grace_hopper), plus scikit-image's greyscale camera. Past those 10, images are distinct views
of the same photos: the mirror image, then tighter centre crops (resize 320 and 400 before the
224 crop) and their mirrors. So "40 images" means 10 real photos × 4 views — said in every
figure these benchmarks print.

Labels: the demo set's ImageNet classes (physical.data.DEMO_IMAGES) where a base has one;
`label_by_model` replaces every label by the model's top-1 on the clean image (for the views
whose object a tight crop may cut, and the bases with no ImageNet class).
"""
from __future__ import annotations

import os

import numpy as np

from physical import data

# (id, package, file)
BASES = [("coffee", "skimage", "coffee.png"), ("chelsea", "skimage", "chelsea.png"),
         ("rocket", "skimage", "rocket.jpg"), ("motorcycle", "skimage", "motorcycle_left.png"),
         ("china", "sklearn", "china.jpg"), ("flower", "sklearn", "flower.jpg"),
         ("astronaut", "skimage", "astronaut.png"), ("motorcycle_right", "skimage", "motorcycle_right.png"),
         ("grace_hopper", "matplotlib", "grace_hopper.jpg"), ("camera", "skimage", "camera.png")]
VIEWS = [("", 256, False), ("-mirror", 256, True), ("-tight", 320, False), ("-tight-mirror", 320, True),
         ("-closer", 400, False), ("-closer-mirror", 400, True)]


def _path(package: str, name: str) -> str:
    if package == "matplotlib":
        import matplotlib

        return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", name)
    return data._demo_path(package, name)


def photos(n: int, size: int = 224) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n images (ids, uint8 n×size×size×3, labels with -1 where unknown): all bases in view 0, then view 1, …"""
    labels = {i: lab for i, _, _, lab in data.DEMO_IMAGES}
    ids, images, out_labels = [], [], []
    for suffix, resize, mirror in VIEWS:
        for base, pkg, name in BASES:
            if len(ids) == n:
                break
            img = data.load_image(_path(pkg, name), size, int(resize * size / 224))
            images.append(np.ascontiguousarray(img[:, ::-1] if mirror else img))
            ids.append(base + suffix)
            out_labels.append(labels.get(base, -1))
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} views of {len(BASES)} photos available (asked {n})")
    return ids, np.stack(images), np.array(out_labels)


def label_by_model(model, images: np.ndarray) -> np.ndarray:
    from physical.models import predict

    top, _ = predict(model, images)
    return top[:, 0].numpy()


def describe(ids: list[str]) -> str:
    bases = sorted({i.split("-")[0] for i in ids})
    return f"{len(ids)} images = {len(bases)} real photos ({', '.join(bases)}) × views (mirror / tighter crops)"
