"""Cache the evaluation images and labels as data/img_batch.pt and data/label_batch.pt.

Sources, in this order of precedence:
  --imagefolder DIR   an ImageNet-style class-folder tree (ILSVRC2012 val in wnid folders, or any
                      ImageFolder), sampled reproducibly to --n images, resized 256 and
                      center-cropped 224, written as numbered PNGs into --png_dir first;
  --png_dir DIR       numbered PNGs 0.png, 1.png, ... with label_batch.pt beside them or in the
                      parent folder (the published layout); the default, visualized_imgs/;
  --sample            real photographs that installed packages ship (scikit-image, matplotlib)
                      with their ImageNet labels: the offline default when --png_dir is empty.

Output: img_batch.pt float32 [N,3,224,224] in [0,1] (pixel/255, RGB, file-number order) and
label_batch.pt int64 [N].
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from utils import CLASS_INDEX_PATH, UserError, run_cli, save_tensor

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png_dir", default="visualized_imgs", help="numbered PNGs (read, or written by the other sources)")
    parser.add_argument("--labels", default=None, help="label_batch.pt for --png_dir (default: beside or above it)")
    parser.add_argument("--imagefolder", default=None, help="class-folder tree to sample from")
    parser.add_argument("--n", type=int, default=1000, help="images to sample from --imagefolder")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for --imagefolder")
    parser.add_argument("--sample", action="store_true", help="use the built-in offline photos")
    parser.add_argument("--out_dir", default="data")
    args = parser.parse_args(argv)

    png_dir = Path(args.png_dir)
    if args.imagefolder:
        imagefolder_source(Path(args.imagefolder), args.n, args.seed, png_dir)
    elif args.sample or not numbered_pngs(png_dir):
        sample_source(png_dir)
    images, labels = load_pngs(png_dir, args.labels)
    out = Path(args.out_dir)
    save_tensor(images, out / "img_batch.pt")
    save_tensor(labels, out / "label_batch.pt")
    print(f"wrote {out / 'img_batch.pt'} {tuple(images.shape)} and {out / 'label_batch.pt'} from {png_dir}")


if __name__ == "__main__":
    run_cli(main)
