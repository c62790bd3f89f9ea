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

The paper's evaluation set is the published repository's visualized_imgs/ with its
data/label_batch.pt (docs/PROTOCOL.md "Data"):
  python generate_pt.py --png_dir /path/to/LA/visualized_imgs --labels /path/to/LA/data/label_batch.pt

Output: img_batch.pt float32 [N,3,224,224] in [0,1] (pixel/255, RGB, file-number order),
label_batch.pt int64 [N], and provenance.json: whether they are the published evaluation set
(all of it, its first N images, or not), checked against data/evaluation_set.json.

--verify checks an existing cache instead: exit status 0 when it holds the published evaluation
set (all of it, or its first N images, with their labels), 1 with a line naming the first image
or label that differs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labench.compute.data import CHECKSUMS_PATH, build_dataset, numbered_pngs, project_path, verify_cache
from labench.errors import UserError, run_cli
from labench.flows.cli import HelpFormatter

DEFAULT_PNG_DIR = "visualized_imgs"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--png_dir", default=None,
                        help=f"numbered PNGs (read, or written by the other sources); default {DEFAULT_PNG_DIR}/")
    parser.add_argument("--labels", default=None, help="label_batch.pt for --png_dir (default: beside or above it)")
    parser.add_argument("--imagefolder", default=None, help="class-folder tree to sample from")
    parser.add_argument("--images", "--n", dest="n", type=int, default=1000, metavar="N",
                        help="images to sample from --imagefolder")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed for --imagefolder")
    parser.add_argument("--sample", action="store_true", help="use the built-in offline photos")
    parser.add_argument("--out_dir", "--data_dir", dest="out_dir", default="data",
                        help="the cache folder (written, or checked by --verify); default data/")
    parser.add_argument("--verify", action="store_true",
                        help="check the cache against the published evaluation set instead of building it")
    parser.add_argument("--checksums", default=str(CHECKSUMS_PATH),
                        help="the published set's checksum file (default: the repository's data/evaluation_set.json)")
    args = parser.parse_args(argv)

    if args.verify:
        verify(args)
        return
    png_dir = Path(args.png_dir or DEFAULT_PNG_DIR)
    named_pngs = args.png_dir is not None and not (args.imagefolder or args.sample)
    if named_pngs and not numbered_pngs(png_dir):
        what = "does not exist" if not png_dir.exists() else "holds no numbered PNGs (0.png, 1.png, ...)"
        raise UserError(f"--png_dir {png_dir} {what}; fix the path, or pass --sample for the built-in photos")
    images, _, match = build_dataset(png_dir, args.out_dir, args.labels, args.imagefolder, args.n, args.seed,
                                     args.sample, args.checksums)
    out = Path(args.out_dir)
    print(f"wrote {out / 'img_batch.pt'} {tuple(images.shape)} and {out / 'label_batch.pt'} from {png_dir}")
    checked = project_path(args.checksums)
    verdict = f"{match.sentence()} (checked against {checked})" if match else f"not checked ({checked} is missing)"
    print(f"the cache is {verdict}; recorded in {out / 'provenance.json'}")


def verify(args):
    given = {"png_dir": args.png_dir, "labels": args.labels, "imagefolder": args.imagefolder, "sample": args.sample}
    sources = [flag for flag, value in given.items() if value]
    if sources:
        raise UserError(f"--verify checks the cache in --data_dir only; drop --{', --'.join(sources)}")
    match = verify_cache(args.out_dir, args.checksums)
    print(f"the cache in {args.out_dir} is {match.sentence()} (checked against {project_path(args.checksums)})")
    if match.difference:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
