"""The evaluation set on disk: data/img_batch.pt and data/label_batch.pt, the sources they are
built from (numbered PNGs, an ImageNet-style class-folder tree, the offline sample photos),
whether they are the published evaluation set (data/evaluation_set.json), and ImageNet class
names."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from ..store.files import atomic_path, save_tensor

ROOT = Path(__file__).resolve().parents[2]
CLASS_INDEX_PATH = ROOT / "imagenet_class_index.json"
NUM_CLASSES = 1000  # every model here is an ImageNet-1k classifier


# ---------------------------------------------------------------- the cached set


def load_dataset(data_dir="data", limit=None):
    """Images float32 [N,3,H,W] in [0,1] and labels int64 [N] from data_dir, checked; with `limit`,
    the first `limit` of them. The image file is memory-mapped, so a run reads and checks only the
    images it uses (the whole cache of 1000 images is 600 MB)."""
    data_dir = Path(data_dir)
    images = _load_pt(data_dir / "img_batch.pt", "images", mmap=True)
    check_image_shape(images)
    labels = load_labels(data_dir)
    if len(labels) != len(images):
        raise UserError(f"{len(images)} images but {len(labels)} labels in {data_dir}; rerun generate_pt.py")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    check_images(images)
    return images.float(), labels


def load_labels(data_dir="data"):
    """The labels int64 [N] of data_dir/label_batch.pt, checked (without reading the images)."""
    return _checked_labels(_load_pt(Path(data_dir) / "label_batch.pt", "labels"), Path(data_dir))


def _checked_labels(labels, data_dir):
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.dtype not in (torch.int64, torch.int32):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise UserError(f"labels in {data_dir / 'label_batch.pt'} must be a 1-D integer tensor, got "
                        f"{getattr(labels, 'dtype', '')} {shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise UserError(f"labels in {data_dir / 'label_batch.pt'} must lie in 0..{NUM_CLASSES - 1} (ImageNet classes), "
                        f"got {int(labels.min())}..{int(labels.max())}; rerun generate_pt.py")
    return labels.long()


def check_image_shape(images):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"images must be a float tensor [N,3,H,W] in [0,1], got {shape}; rerun generate_pt.py")


def check_images(images):
    check_image_shape(images)
    if not images.is_floating_point():
        raise UserError(f"images must be floats in [0,1], got {images.dtype}; rerun generate_pt.py")
    if not torch.isfinite(images).all():
        raise UserError("the images hold NaN or infinite values (a corrupt cache?); rerun generate_pt.py")
    if images.min() < 0 or images.max() > 1:
        raise UserError("images must be floats in [0,1]; rerun generate_pt.py")


def _load_pt(path, what, mmap=False):
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist; run generate_pt.py first (or pass --data_dir)")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # an old (non-zip) file cannot be mapped
    except Exception as err:
        raise UserError(f"{what} file {path} is corrupt ({type(err).__name__}); rerun generate_pt.py") from None


def class_names():
    """{index: human-readable name} from imagenet_class_index.json."""
    with open(CLASS_INDEX_PATH) as f:
        index = json.load(f)
    return {int(k): v[1] for k, v in index.items()}


def build_class_index():
    """{"0": [wnid, name], ...} for the 1000 ImageNet-1k classes, from installed packages.

    Sources: the WordNet ids in timm's `data/_info/imagenet_synsets.txt` (the standard class
    order) and the class names in torchvision's ImageNet weights metadata, spaces made
    underscores (the Keras `imagenet_class_index.json` style).
    """
    import timm
    import torchvision

    synsets = Path(timm.__file__).parent / "data" / "_info" / "imagenet_synsets.txt"
    wnids = synsets.read_text().split()
    names = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    if len(wnids) != 1000 or len(names) != 1000:
        raise RuntimeError("expected 1000 ImageNet classes in timm's synsets and torchvision's categories")
    return {str(i): [wnid, name.replace(" ", "_")] for i, (wnid, name) in enumerate(zip(wnids, names))}


def write_class_index(path=CLASS_INDEX_PATH):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(build_class_index()))
    return path


# ---------------------------------------------------------------- sources


IMAGE_SIZE = 224
RESIZE = 256
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def _skimage_file(name):
    from skimage import data

    return Image.open(os.path.join(data.data_dir, name))


def _matplotlib_file(name):
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data(name, asfileobj=False))


# name -> (loader, ImageNet label, why that label)
SAMPLE_PHOTOS = {
    "coffee": (lambda: _skimage_file("coffee.png"), 967, "espresso: a cup of coffee on a saucer"),
    "camera": (lambda: _skimage_file("camera.png"), 872, "tripod: the cameraman's camera stands on one"),
    "rocket": (lambda: _skimage_file("rocket.jpg"), 657, "missile: ImageNet's class for a launch rocket"),
    "motorcycle_left": (lambda: _skimage_file("motorcycle_left.png"), 665, "moped: ImageNet's closest class to a motorcycle"),
    "chelsea": (lambda: _skimage_file("chelsea.png"), 281, "tabby: Chelsea the cat"),
    "grace_hopper": (lambda: _matplotlib_file("grace_hopper.jpg"), 652, "military_uniform: Grace Hopper in US Navy uniform"),
}


def resize_center_crop(image: Image.Image) -> Image.Image:
    """Shorter side to 256 (bilinear), then the central 224x224, as torchvision's eval transform."""
    import torchvision.transforms.functional as TF

    image = TF.resize(image.convert("RGB"), RESIZE, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(image, IMAGE_SIZE)


def write_pngs(images, labels, png_dir: Path):
    """Numbered PNGs and label_batch.pt into png_dir (replacing what was there)."""
    png_dir.mkdir(parents=True, exist_ok=True)
    for old in png_dir.glob("*.png"):
        if old.stem.isdigit():
            old.unlink()
    for i, image in enumerate(images):
        image.save(png_dir / f"{i}.png")
    save_tensor(torch.tensor(labels, dtype=torch.int64), png_dir / "label_batch.pt")


def sample_source(png_dir: Path):
    images, labels = [], []
    for name, (load, label, _) in SAMPLE_PHOTOS.items():
        try:
            images.append(resize_center_crop(load()))
        except (ImportError, FileNotFoundError) as err:
            raise UserError(f"sample photo {name!r} unavailable ({err}); pip install scikit-image matplotlib") from None
        labels.append(label)
    write_pngs(images, labels, png_dir)


def _folder_labels(class_dirs):
    """Label of each class folder: its wnid's ImageNet index, its integer name, or its sorted position."""
    names = [d.name for d in class_dirs]
    with open(CLASS_INDEX_PATH) as f:
        wnid_to_index = {wnid: int(i) for i, (wnid, _) in json.load(f).items()}
    if all(n in wnid_to_index for n in names):
        return [wnid_to_index[n] for n in names]
    if all(n.isdigit() for n in names):
        return [int(n) for n in names]
    return list(range(len(names)))


def imagefolder_source(root: Path, n: int, seed: int, png_dir: Path):
    if not root.is_dir():
        raise UserError(f"--imagefolder {root} is not a folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not class_dirs:
        raise UserError(f"--imagefolder {root} has no class folders (expected ROOT/<class>/<image>)")
    files = [(f, label) for d, label in zip(class_dirs, _folder_labels(class_dirs))
             for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"--imagefolder {root} has no images in its class folders")
    pick = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[: min(n, len(files))]
    chosen = [files[i] for i in pick.tolist()]
    images = []
    for path, _ in chosen:
        try:
            images.append(resize_center_crop(Image.open(path)))
        except Exception as err:
            raise UserError(f"cannot read image {path} ({type(err).__name__}); remove it or fix it") from None
    write_pngs(images, [label for _, label in chosen], png_dir)


def numbered_pngs(png_dir: Path):
    files = [p for p in png_dir.glob("*.png") if re.fullmatch(r"\d+", p.stem)]
    return sorted(files, key=lambda p: int(p.stem))


def find_labels(png_dir: Path, labels_path):
    candidates = [Path(labels_path)] if labels_path else [png_dir / "label_batch.pt", png_dir.parent / "label_batch.pt"]
    for path in candidates:
        if path.is_file():
            try:
                return torch.as_tensor(torch.load(path, map_location="cpu", weights_only=True)).long().view(-1)
            except Exception as err:
                raise UserError(f"label file {path} is corrupt ({type(err).__name__}); recreate it") from None
    raise UserError(f"no label file found (looked for {', '.join(map(str, candidates))}); pass --labels PATH")


def load_pngs(png_dir: Path, labels_path=None):
    files = numbered_pngs(png_dir)
    numbers = [int(p.stem) for p in files]
    if numbers != list(range(len(files))):
        raise UserError(f"PNGs in {png_dir} must be numbered 0.png..{len(files) - 1}.png without gaps")
    labels = find_labels(png_dir, labels_path)
    if len(labels) != len(files):
        raise UserError(f"{len(files)} images in {png_dir} but {len(labels)} labels; give one label per image")
    tensors = []
    for path in files:
        try:
            image = Image.open(path).convert("RGB")
        except Exception as err:
            raise UserError(f"cannot read {path} ({type(err).__name__}); replace or remove it") from None
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            image = resize_center_crop(image)
        tensors.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
    images = torch.stack(tensors).float() / 255
    return images, labels


def build_dataset(png_dir, out_dir="data", labels=None, imagefolder=None, n=1000, seed=0, sample=False,
                  checksums=None):
    """Write out_dir/img_batch.pt, label_batch.pt and provenance.json from the chosen source;
    returns (images, labels, match with the published evaluation set).

    imagefolder: sample n images from a class-folder tree into png_dir first; sample: the offline
    photos into png_dir; else the numbered PNGs in png_dir (the offline photos when it has none).
    checksums: the published set's checksum file (default data/evaluation_set.json).
    """
    png_dir = Path(png_dir)
    out = Path(out_dir)
    (out / PROVENANCE_NAME).unlink(missing_ok=True)  # never describe a cache it was not written for
    if imagefolder:
        imagefolder_source(Path(imagefolder), n, seed, png_dir)
        source = f"images sampled (seed {seed}) from {imagefolder}, as PNGs in {png_dir}"
    elif sample or not numbered_pngs(png_dir):
        sample_source(png_dir)
        source = f"the offline sample photos, as PNGs in {png_dir}"
    else:
        source = f"the numbered PNGs in {png_dir}"
    images, label_tensor = load_pngs(png_dir, labels)
    save_tensor(images, out / "img_batch.pt")
    save_tensor(label_tensor, out / "label_batch.pt")
    match = record_provenance(out, images, label_tensor, source, checksums)
    return images, label_tensor, match


# ---------------------------------------------------------------- the published evaluation set
#
# The evaluation set of the paper is the code repository's visualized_imgs/0.png..999.png with
# data/label_batch.pt. The images are not shipped here; data/evaluation_set.json holds a digest
# of each image's decoded pixels and the labels, so that any copy of the set, and any cache built
# from it, can be checked. Digests cover decoded pixels rather than PNG file bytes: a re-encoded
# PNG still matches, and so does the cache, whose values are pixel/255.

PUBLISHED_REPOSITORY = "https://github.com/LMBTough/LA"
CHECKSUMS_PATH = ROOT / "data" / "evaluation_set.json"
PROVENANCE_NAME = "provenance.json"
DIGEST_HEX = 32  # 128 bits of each image's SHA-256: ample against accidental or deliberate change


def pixel_digest(pixels: np.ndarray) -> str:
    """The first DIGEST_HEX hex digits of the SHA-256 of uint8 pixels laid out height x width x
    RGB, row-major (what PIL decodes a PNG to)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    return hashlib.sha256(pixels.tobytes()).hexdigest()[:DIGEST_HEX]


def cached_pixels(image: torch.Tensor) -> np.ndarray:
    """A cached image [3,H,W] of pixel/255 values back to its uint8 [H,W,3] pixels (exact: x*255
    rounds back to the pixel for every float32 or float64 pixel/255)."""
    return (image.detach().double() * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def labels_digest(labels) -> str:
    """SHA-256 of the label values as little-endian int64 (not of a file: a re-saved label file
    still matches)."""
    values = np.asarray(torch.as_tensor(labels).view(-1).tolist(), dtype="<i8")
    return hashlib.sha256(values.tobytes()).hexdigest()


def write_checksums(png_dir, labels_path=None, path=CHECKSUMS_PATH, source=None):
    """Write the checksum file of the numbered PNGs in png_dir and their labels (how
    data/evaluation_set.json was made from the published repository's files)."""
    files = numbered_pngs(Path(png_dir))
    labels = find_labels(Path(png_dir), labels_path).tolist()
    if [int(p.stem) for p in files] != list(range(len(files))) or len(labels) != len(files):
        raise UserError(f"{png_dir} must hold 0.png..{len(labels) - 1}.png, one per label")
    digests = [pixel_digest(np.asarray(Image.open(p).convert("RGB"))) for p in files]
    checksums = {
        "about": "The evaluation set of the LA benchmark (docs/PROTOCOL.md \"Data\"): its labels and, per image, "
                 f"the first {DIGEST_HEX} hex digits of the SHA-256 of its decoded pixels (uint8, rows x columns x RGB, "
                 "row-major); labels_sha256 is the SHA-256 of the labels as little-endian int64. "
                 "Check a cache with: python generate_pt.py --verify",
        "source": source or {"repository": PUBLISHED_REPOSITORY, "images": "visualized_imgs/0.png .. 999.png",
                             "labels": "data/label_batch.pt"},
        "image_shape": list(np.asarray(Image.open(files[0]).convert("RGB")).shape) if files else [],
        "labels_sha256": labels_digest(labels),
        "labels": labels,
        "images": digests,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(checksums, indent=1) + "\n")
    return Path(path)


def read_checksums(path=CHECKSUMS_PATH) -> dict:
    """The checksum file, checked for consistency (its labels against their SHA-256)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checksum file {path} does not exist; restore it from the repository "
                        "(git checkout data/evaluation_set.json) or pass --checksums PATH")
    try:
        checksums = json.loads(path.read_text())
        consistent = labels_digest(checksums["labels"]) == checksums["labels_sha256"] \
            and len(checksums["images"]) == len(checksums["labels"])
    except (ValueError, KeyError, TypeError):
        consistent = False
    if not consistent:
        raise UserError(f"checksum file {path} is damaged; restore it from the repository")
    return checksums


@dataclass(frozen=True)
class SetMatch:
    """How a cache compares with the published evaluation set."""
    held: int  # images in the cache
    total: int  # images in the published set
    difference: str | None  # the first image or label that differs, None if none does

    @property
    def status(self) -> str:
        """'all', 'first N' (a leading part of the set, labels included) or 'no'."""
        if self.difference:
            return "no"
        return "all" if self.held == self.total else f"first {self.held}"

    def sentence(self) -> str:
        if self.difference:
            return f"not the published evaluation set: {self.difference}"
        if self.held == self.total:
            return f"the published evaluation set: all {self.total} images with their labels"
        return f"the first {self.held} of the {self.total} images of the published evaluation set, with their labels"


def compare_with_published(images: torch.Tensor, labels: torch.Tensor, checksums: dict) -> SetMatch:
    """Compare cached images [N,3,H,W] (pixel/255) and labels [N] with the checksum file, image
    by image in index order (an image before its label); stop at the first difference."""
    digests, expected_labels = checksums["images"], checksums["labels"]
    shape = tuple(checksums.get("image_shape") or ())
    total = len(digests)
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        difference = None
        if i >= total:
            difference = f"image {i} is beyond the published set's {total} images"
        elif shape and (image.shape[1], image.shape[2], image.shape[0]) != shape:
            difference = (f"image {i} is {'x'.join(map(str, image.shape))}, the published images are "
                          f"{shape[2]}x{shape[0]}x{shape[1]}")
        elif pixel_digest(cached_pixels(image)) != digests[i]:
            difference = f"image {i} differs from the published {i}.png"
        elif int(label) != int(expected_labels[i]):
            difference = f"label {i} is {int(label)}, the published label is {int(expected_labels[i])}"
        if difference:
            return SetMatch(len(images), total, difference)
    return SetMatch(len(images), total, None)


def project_path(path) -> str:
    """A path as a reader of this project sees it: relative to the project when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def record_provenance(out_dir, images, labels, source, checksums=None):
    """Compare a freshly built cache with the published set and write out_dir/provenance.json;
    returns the SetMatch (None when no checksum file is there to compare with)."""
    path = Path(checksums or CHECKSUMS_PATH)
    match = compare_with_published(images, labels, read_checksums(path)) if path.is_file() else None
    record = {
        "published_evaluation_set": match.status if match else "unknown",
        "images": len(images),
        "first_difference": match.difference if match else None,
        "checked_against": project_path(path) if match else f"nothing ({project_path(path)} is missing)",
        "source": source,
    }
    with atomic_path(Path(out_dir) / PROVENANCE_NAME) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return match


def verify_cache(data_dir="data", checksums=None, images=None) -> SetMatch:
    """Compare the cache in data_dir (its first `images` when given) with the checksum file."""
    cached, labels = load_dataset(data_dir, images)
    return compare_with_published(cached, labels, read_checksums(checksums or CHECKSUMS_PATH))


def describe_evaluation_set(data_dir="data", images=None, checksums=None) -> str:
    """One sentence for a report: whether the images it used (the cache's first `images`) are the
    published evaluation set, checked against the checksum file now."""
    path = Path(checksums or CHECKSUMS_PATH)
    if not path.is_file():
        return f"The images were not checked against the published evaluation set ({project_path(path)} is missing)."
    match = verify_cache(data_dir, path, images)
    return f"The images are {match.sentence()} (checked against {project_path(path)})."
