"""The effect of each published quirk (docs/PROTOCOL.md "As published") on the benchmark's numbers.

    .venv/bin/python bench/published_effect.py --model efficientnet_lite0 --images 64
    .venv/bin/python bench/published_effect.py --images 2 --max_iter 2 --sampling_times 2   # a smoke run

For every method with a published variant (la, agi, deeplift, eg) it runs generate_attributions
and eval.py as default and as --published, and scores the default maps with the published
metric's tie order (NumPy's argsort) against the default (stable); only the images where the tie
order moves some value into another step are re-scored (saliency.metric.perturbation_steps), the
others' curves are the default's. It prints one Markdown row
per comparison: insertion and deletion AUC of both sides, their difference (B - A) with a paired
bootstrap 95% interval over images (labench.stats.inference.paired_comparison on per-image AUCs), and for
the maps the median and minimum per-image Pearson r between default and published maps.

Resumable: the scripts' outputs live in --out (maps, scores, results.csv) and are reused, as are
the tie-order curves (<out>/ties). A benchmark, not a test.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from labench.compute import attributions, scoring
from labench.compute.setup import load_inputs, output_id
from labench.errors import run_cli
from labench.store.files import save_npz
from labench.spec.run import Run
from labench.stats.inference import paired_comparison
from saliency.metric import GAMES, perturbation_steps

METHODS = ("la", "agi", "deeplift", "eg")


def method_run(args, method, published):
    """The run value of one method and mode (what generate_attributions.py and eval.py do)."""
    out = Path(args.out)
    return Run(model=args.model, method=method, data_dir=args.data_dir, limit=args.images, device=args.device,
               params={"spatial_range": args.spatial_range, "max_iter": args.max_iter,
                       "sampling_times": args.sampling_times},
               modes=("published",) if published else (), maps_dir=out / "attributions", scores_dir=out / "scores",
               csv_path=out / "results.csv")


def run_mode(args, method, published):
    """Maps and scores of one mode (the jobs skip what exists): (maps path, scores dict)."""
    run = method_run(args, method, published)
    attributions.run(run)
    scoring.run(run)
    return Path(run.maps_dir) / output_id(run).maps_file, scoring.load_scores(Path(run.scores_dir) / output_id(run).scores_file)


def numpy_tie_scores(args, method, maps_path, moved):
    """Curves of the default maps under the published tie order, cached in <out>/ties; moved:
    the images whose steps the tie order changes (the others' curves are the default's)."""
    path = Path(args.out) / "ties" / (maps_path.name.removesuffix("_attributions.npy") + "_numpy-ties_scores.npz")
    if path.exists():
        return scoring.load_scores(path)
    images, _, model, _ = load_inputs(method_run(args, method, False))
    maps = torch.from_numpy(np.load(maps_path)[: len(images)])
    records = default_records(args, method)
    if moved:  # only where the tie order changes a step's set of units can a curve change
        records[moved] = scoring.scored_records(images[moved], maps[moved], model, batch_size=4, ties="numpy")
    scores = scoring.summarize(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(scores, path)
    return scores


def tie_order_moves_a_step(single_map) -> bool:
    """Whether NumPy's tie order moves some unit of this map in another step than the stable
    order does (units of equal value straddling a step boundary); else the curves are the same."""
    return not torch.equal(perturbation_steps(single_map[None], ties="stable"),
                           perturbation_steps(single_map[None], ties="numpy"))


def default_records(args, method):
    """The default (stable ties) curves and classes of the default maps, as scoring RECORDs."""
    run = method_run(args, method, False)
    scores = scoring.load_scores(Path(run.scores_dir) / output_id(run).scores_file)
    records = np.empty(len(scores["classes"]), scoring.RECORD)
    records["curves"] = np.stack([scores["ins_curve"].T, scores["del_curve"].T], axis=1)
    records["class"] = scores["classes"]
    return records


def per_image_auc(scores, game):
    return np.asarray(scores[f"{game}_auc"], dtype=np.float64)


def map_pearson(a_path, b_path):
    """'median / min' over images of Pearson r between two map sets; constant maps have no r."""
    a, b = np.load(a_path), np.load(b_path)
    rs = np.array([np.corrcoef(x.ravel(), y.ravel())[0, 1] if x.std() > 0 and y.std() > 0 else np.nan
                   for x, y in zip(a.astype(np.float64), b.astype(np.float64))])
    defined = rs[~np.isnan(rs)]
    if defined.size == 0:
        return f"- (all {len(rs)} pairs have a constant map)"
    text = f"{np.median(defined):.3f} / {defined.min():.3f}"
    if defined.size < len(rs):
        text += f" ({len(rs) - defined.size} of {len(rs)} pairs have a constant map)"
    return text


def signed(x):
    """+0.0123, or +2.1e-07 where four decimals would round a nonzero difference to zero."""
    return f"{x:+.1e}" if x != 0 and abs(x) < 5e-5 else f"{x:+.4f}"


def row(label, a, b, r="-"):
    """One Markdown row comparing scores a (reference) and b."""
    cells = [label]
    for game in (g.key for g in GAMES):
        x, y = per_image_auc(a, game), per_image_auc(b, game)
        diff = paired_comparison(y, x)
        cells += [f"{x.mean():.4f}", f"{y.mean():.4f}",
                  f"{signed(diff['mean_diff'])} [{signed(diff['low'])}, {signed(diff['high'])}]"]
    cells.append(r)
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--images", type=int, default=64, help="the first N images of --data_dir")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--spatial_range", type=int, default=20)
    parser.add_argument("--max_iter", type=int, default=20)
    parser.add_argument("--sampling_times", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench_out/published_effect", help="folder of the reused outputs")
    args = parser.parse_args(argv)

    lines = [f"{args.model}, first {args.images} images; B - A with a paired bootstrap 95% interval over images",
             "", "| comparison (A -> B) | ins A | ins B | ins B - A | del A | del B | del B - A | r of maps: median / min |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method in args.methods:
        default_maps, default_scores = run_mode(args, method, False)
        published_maps, published_scores = run_mode(args, method, True)
        lines.append(row(f"{method}: default -> --published", default_scores, published_scores,
                         map_pearson(default_maps, published_maps)))
        maps = torch.from_numpy(np.load(default_maps)[: args.images])
        moved = [i for i in range(len(maps)) if tie_order_moves_a_step(maps[i])]
        ties = numpy_tie_scores(args, method, default_maps, moved)
        lines.append(row(f"{method} default maps: ties stable -> numpy ({len(moved)} of {len(maps)} images "
                         "re-scored)", default_scores, ties))
    print("\n".join(lines))


if __name__ == "__main__":
    run_cli(main)
