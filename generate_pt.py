"""Cache the evaluation images and labels as data/img_batch.pt and data/label_batch.pt.

Sources, in this order of precedence:
  --imagefolder DIR   an ImageNet-style class-folder tree (ILSVRC2012 val in wnid folders, or any
                      ImageFolder), sampled reproducibly to --n images, resized 256 and
                      center-cropped 224, written as numbered PNGs into --png_dir first;
  --png_dir DIR       numbered PNGs 0.png, 1.png, ... with label_batch.pt beside them or in the
                      parent folder (the published layout); the default, visualized_imgs/;
  --sample            real photographs that installed packages ship (scikit-image, matplotlib)
                      with their ImageNet labels: the offline default when no --png_dir is
                      named and visualized_imgs/ holds no PNGs (a named --png_dir must hold them).

Output: img_batch.pt float32 [N,3,224,224] in [0,1] (pixel/255, RGB, file-number order) and
label_batch.pt int64 [N].
"""
from __future__ import annotations

import argparse
from pathlib import Path

from labench.data import build_dataset, numbered_pngs
from labench.errors import UserError, run_cli

DEFAULT_PNG_DIR = "visualized_imgs"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png_dir", default=None,
                        help=f"numbered PNGs (read, or written by the other sources); default {DEFAULT_PNG_DIR}/")
    parser.add_argument("--labels", default=None, help="label_batch.pt for --png_dir (default: beside or above it)")
    parser.add_argument("--imagefolder", default=None, help="class-folder tree to sample from")
    parser.add_argument("--n", type=int, default=1000, help="images to sample from --imagefolder")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for --imagefolder")
    parser.add_argument("--sample", action="store_true", help="use the built-in offline photos")
    parser.add_argument("--out_dir", default="data")
    args = parser.parse_args(argv)

    png_dir = Path(args.png_dir or DEFAULT_PNG_DIR)
    named_pngs = args.png_dir is not None and not (args.imagefolder or args.sample)
    if named_pngs and not numbered_pngs(png_dir):
        what = "does not exist" if not png_dir.exists() else "holds no numbered PNGs (0.png, 1.png, ...)"
        raise UserError(f"--png_dir {png_dir} {what}; fix the path, or pass --sample for the built-in photos")
    images, labels = build_dataset(png_dir, args.out_dir, args.labels, args.imagefolder, args.n, args.seed, args.sample)
    out = Path(args.out_dir)
    print(f"wrote {out / 'img_batch.pt'} {tuple(images.shape)} and {out / 'label_batch.pt'} from {png_dir}")


if __name__ == "__main__":
    run_cli(main)
