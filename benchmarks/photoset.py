"""Real photos for the channel and EOT benchmarks, offline: only what packages already ship.

The bases are the colour photos bundled (no download) with scikit-image (astronaut, chelsea,
coffee, rocket, motorcycle left and right views), scikit-learn (china, flower) and matplotlib
(grace_hopper), plus scikit-image's greyscale camera — 10 photos — and, when Debian's
`opencv-doc` package is unpacked, 30 more of OpenCV's sample photos (baboon, fruits, messi5,
home, butterfly, building, squirrel, a robin, a dog, street scenes, ...; drawings, renders,
maps and synthetic test patterns left out). Setup, once, no install needed:

    apt-get download opencv-doc && dpkg -x opencv-doc_*.deb ~/.cache/physical/opencv-doc

(or set PHYSICAL_OPENCV_DOC to the unpacked tree; an installed package in /usr/share/doc is
found too). Past the distinct photos, images are views of the same photos: the mirror image,
then tighter centre crops (resize 320 and 400 before the 224 crop) and their mirrors. Every
figure these benchmarks print says how many distinct photos its n images are (`describe`).

Labels: the demo set's ImageNet classes (physical.data.DEMO_IMAGES) where a base has one;
`label_by_model` replaces every label by the model's top-1 on the clean image (for the views
whose object a tight crop may cut, and the bases with no ImageNet class).
"""
from __future__ import annotations

import os

import numpy as np

from physical import data

# (id, package, file); ids without "-" (describe splits the view suffix off at the first "-")
BASES = [("coffee", "skimage", "coffee.png"), ("chelsea", "skimage", "chelsea.png"),
         ("rocket", "skimage", "rocket.jpg"), ("motorcycle", "skimage", "motorcycle_left.png"),
         ("china", "sklearn", "china.jpg"), ("flower", "sklearn", "flower.jpg"),
         ("astronaut", "skimage", "astronaut.png"), ("motorcycle_right", "skimage", "motorcycle_right.png"),
         ("grace_hopper", "matplotlib", "grace_hopper.jpg"), ("camera", "skimage", "camera.png")]
# OpenCV's sample photos (opencv-doc's examples/ tree), chosen by eye: real photographs only
OPENCV = [("baboon", "data/baboon.jpg"), ("fruits", "data/fruits.jpg"), ("messi", "data/messi5.jpg"),
          ("home", "data/home.jpg"), ("butterfly", "data/butterfly.jpg"), ("building", "data/building.jpg"),
          ("apple", "data/apple.jpg"), ("orange", "data/orange.jpg"), ("squirrel", "data/squirrel_cls.jpg"),
          ("aloe", "data/aloeL.jpg"), ("board", "data/board.jpg"), ("notebook", "data/ela_original.jpg"),
          ("graffiti", "data/graf1.png"), ("books", "data/left.jpg"), ("leuven", "data/leuvenA.jpg"),
          ("car_rear", "data/licenseplate_motion.jpg"), ("toys", "data/rubberwhale1.png"),
          ("smarties", "data/smarties.png"), ("desk", "data/stuff.jpg"), ("aerial", "data/aero1.jpg"),
          ("aerial_coast", "data/aero3.jpg"), ("dog", "data/chicky_512.png"),
          ("plant", "alphamat/input_images/plant.jpg"), ("monarch", "dnn_superres/butterfly.png"),
          ("robin", "hfs/data/000.jpg"), ("lake", "hfs/data/001.jpg"), ("tree", "hfs/data/002.jpg"),
          ("street_sign", "text/scenetext01.jpg"), ("yard", "text/scenetext04.jpg"),
          ("pub", "text/scenetext06.jpg")]
VIEWS = [("", 256, False), ("-mirror", 256, True), ("-tight", 320, False), ("-tight-mirror", 320, True),
         ("-closer", 400, False), ("-closer-mirror", 400, True)]


def opencv_examples() -> str | None:
    """The unpacked opencv-doc examples/ folder, or None."""
    roots = [os.environ.get("PHYSICAL_OPENCV_DOC"), os.path.expanduser("~/.cache/physical/opencv-doc"), "/"]
    for root in filter(None, roots):
        path = os.path.join(root, "usr/share/doc/opencv-doc/examples")
        if os.path.isdir(path):
            return path
        if os.path.isdir(os.path.join(root, "data")) and root != "/":   # pointed at examples/ itself
            return root
    return None


def _path(package: str, name: str) -> str:
    if package == "matplotlib":
        import matplotlib

        return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", name)
    if package == "opencv-doc":
        return os.path.join(opencv_examples(), name)
    return data._demo_path(package, name)


def bases() -> list[tuple[str, str, str]]:
    """The distinct photos available here: the bundled 10, then opencv-doc's when unpacked."""
    out = list(BASES)
    root = opencv_examples()
    if root:
        out += [(i, "opencv-doc", f) for i, f in OPENCV if os.path.isfile(os.path.join(root, f))]
    return out


def photos(n: int, size: int = 224) -> tuple[list[str], np.ndarray, np.ndarray]:
    """n images (ids, uint8 n×size×size×3, labels with -1 where unknown): all bases in view 0, then view 1, …"""
    labels = {i: lab for i, _, _, lab in data.DEMO_IMAGES}
    available = bases()
    ids, images, out_labels = [], [], []
    for suffix, resize, mirror in VIEWS:
        for base, pkg, name in available:
            if len(ids) == n:
                break
            img = data.load_image(_path(pkg, name), size, int(resize * size / 224))
            images.append(np.ascontiguousarray(img[:, ::-1] if mirror else img))
            ids.append(base + suffix)
            out_labels.append(labels.get(base, -1))
    if len(ids) < n:
        raise SystemExit(f"only {len(ids)} views of {len(available)} photos available (asked {n})")
    return ids, np.stack(images), np.array(out_labels)


def label_by_model(model, images: np.ndarray) -> np.ndarray:
    from physical.models import predict

    top, _ = predict(model, images)
    return top[:, 0].numpy()


def describe(ids: list[str]) -> str:
    bases = sorted({i.split("-")[0] for i in ids})
    views = len(ids) - len(bases)
    how = f"{len(bases)} distinct real photos" + (f" + {views} views of them (mirror / tighter crops)" if views else "")
    hint = "" if opencv_examples() else " (opencv-doc not unpacked: see benchmarks/photoset.py for 30 more photos)"
    return f"{len(ids)} images = {how}{hint}: {', '.join(bases)}"
