"""The statistics of the tables as plain results: a `Cell` (mean and interval), a `Comparison` of
LA with a method, a `Headline`, the `Ranks` of one model's methods, a `Ranking` under the metric
variants, the `SeedSpread` of the stochastic methods, a `Subset` (the correctly classified
images) and the agreement `AcrossModels`, all in one `Statistics`. labench.present.significance collects
their inputs from the scores files and shows them; every number comes from labench.stats.inference.

One printed table is one model tag (one model, its weights, its modes: `-published`, `-fast`,
`-amp` runs are tags of their own), one game and one set of images; its comparisons of LA with
the other methods are one Holm family (labench.stats.inference.paired_family). A model tag's fields are
read from its OutputId.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from saliency.metric import GAMES, Game

from ..spec.identity import LEAD, METRIC_MODES, PAPER, method_order
from .clusters import class_means, exact_sign_flip_p, hodges_lehmann, sign_test_p, within_class_correlation
from .inference import (N_RESAMPLES, SEED, baseline_ratios, geometric_improvement_ci, holm, mean_ci, paired_family,
                        rank_intervals, relative_improvement_ci, relative_shift, tau_interval, verdict, win_rate)



@dataclass(frozen=True)
class PerImage:
    """The per-image AUCs of the rows a table shows (labench.present.significance.collect)."""
    values: dict  # {model tag: {method: {Game: [N] per-image AUCs}}}
    sources: dict  # {model tag: {method: the scores file}}
    outputs: dict  # {model tag: the OutputId of one of its rows: the tag's fields}
    classes: dict = field(default_factory=dict)  # {model tag: [N] the class the metric scored (the prediction)}

    def protocol(self, tag) -> str:
        return protocol_of(self.outputs[tag])[1]


def protocol_of(out):
    """(what the protocols of one model share: its model, weights, seed and modes other than metric
    variants; the protocol: 'paper' or the output's metric variants joined by '+')."""
    shared = (out.model, out.weights, tuple(m for m in out.modes if m not in METRIC_MODES), out.seed)
    return shared, out.protocol


@dataclass(frozen=True)
class Cell:
    """A table cell: the mean AUC over images and its bootstrap interval."""
    model: str  # the model tag
    method: str
    game: Game
    n: int
    mean: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """LA against one method on the same images (one row of a Holm family: labench.stats.inference.paired_family)."""
    model: str
    method: str
    game: Game
    n: int
    la_minus_method: float  # the mean of the per-image differences
    diff_low: float  # the interval that inverts the test at the row's Holm level
    diff_high: float
    level: float  # that interval's confidence, 1 - alpha / Holm's multiplier of the row
    p_value: float  # the paired sign-flip test of mean(LA - method) = 0
    p_holm: float
    verdict: str  # "better", "worse" (LA than the method, significantly) or "n.s."
    win_rate: float  # the share of images on which LA is better, ties half
    shift: float  # the median of per-image (LA - method) / (|LA| + |method|)


@dataclass(frozen=True)
class ClassComparison:
    """LA against one method with the class as the unit (labench.stats.clusters): each of the k
    classes contributes the mean of its images' differences LA - method."""
    model: str
    method: str
    game: Game
    n_images: int
    n_classes: int
    la_minus_method: float  # the mean over classes of the per-class mean difference
    diff_low: float  # its BCa bootstrap interval over classes (95%)
    diff_high: float
    p_value: float  # the sign-flip test over classes: exact over 2^k patterns, or Monte Carlo
    p_se: float  # that p-value's Monte Carlo standard error (0: exact)
    p_holm: float  # Holm over the table's comparisons
    verdict: str
    classes_better: int  # classes on which LA is better (by the class mean)
    classes_worse: int
    sign_p: float  # the sign test over classes (ties dropped)
    hodges_lehmann: float  # the typical per-class difference
    icc: float  # the within-class correlation of the per-image differences


@dataclass(frozen=True)
class Headline:
    """LA's relative improvement over the baselines scored on its images: the paper's form (the mean
    of the ratios) and the geometric one, each with a bootstrap interval, and each baseline's term."""
    model: str
    game: Game
    n: int
    baselines: int
    relative_improvement: float
    ci_low: float
    ci_high: float
    geometric: float
    geometric_low: float
    geometric_high: float
    ratios: dict  # {baseline: (LA - B) / B, deletion (B - LA) / B}, in the paper's method order


@dataclass(frozen=True)
class Agreement:
    """Kendall's tau-b between two rankings of the same methods with its bootstrap interval over
    the images both were scored on (labench.stats.inference.tau_interval)."""
    tau: float
    p: float
    low: float
    high: float
    n: int  # images

    @property
    def reading(self) -> str:
        if math.isnan(self.tau):
            return "-"
        if not self.p < 0.05:
            return "n.s. (no evidence of agreement or of reversal)"
        return "agree" if self.tau > 0 else "reversed"


def agreement(per_image_a, per_image_b, higher_is_better) -> Agreement:
    found = tau_interval(per_image_a, per_image_b, higher_is_better, n_resamples=N_RESAMPLES, seed=SEED)
    return Agreement(found["tau"], found["p"], found["low"], found["high"], found["n"])


NO_AGREEMENT = Agreement(math.nan, math.nan, math.nan, math.nan, 0)


@dataclass(frozen=True)
class Ranks:
    """One model tag's methods ranked by mean AUC, on the first n images every method scored."""
    model: str
    n: int
    ranks: dict  # {Game: frame methods x (mean, rank, low, high): the rank's 95% bootstrap interval}
    ins_vs_del: Agreement  # between its insertion and deletion rankings


@dataclass(frozen=True)
class Ranking:
    """One model's methods ranked under the paper's metric and each variant, like for like."""
    model: str  # the model tag under the paper's protocol
    protocols: list  # 'paper' first, then the variants
    n: int  # the first n images, scored under every protocol
    means: dict  # {Game: frame methods x protocols of mean AUCs}
    ranks: dict  # {Game: frame methods x protocols, 1 = best}
    tau: dict  # {Game: {variant: Agreement with the paper's ranking}}
    ins_vs_del: dict  # {protocol: Agreement between its insertion and deletion rankings}


@dataclass(frozen=True)
class SeedSpread:
    """The stochastic methods of one model tag rerun with other seeds on its first n images."""
    model: str  # the tag of seed 0
    n: int
    seeds: list  # 0 first
    means: dict  # {Game: frame methods x seeds of mean AUCs on the first n images}
    verdicts: dict  # {Game: frame methods x ("all images", "seed 0", "seed 1", ...)}: LA against each method

    def changed(self, game) -> list:
        """The methods whose verdict against LA is not the same under every seed."""
        frame = self.verdicts[game]
        seeds = [c for c in frame.columns if c.startswith("seed")]
        return [m for m in frame.index if frame.loc[m, seeds].nunique() > 1]


@dataclass(frozen=True)
class Subset:
    """The cells and LA's comparisons of one model tag on a subset of its images."""
    model: str
    n_all: int
    n: int
    cells: list  # [Cell]
    comparisons: list  # [Comparison]


@dataclass(frozen=True)
class AcrossModels:
    """The models scored under one protocol and set of modes, side by side."""
    protocol: str
    models: list  # model tags
    agreement: dict  # {Game: {(tag a, tag b): Agreement of their rankings on the common images}}
    verdicts: dict  # {Game: frame methods x model tags of LA's verdicts ('-' where not compared)}


@dataclass(frozen=True)
class Statistics:
    cells: list  # [Cell]
    comparisons: list  # [Comparison]
    headlines: list  # [Headline]
    rankings: list  # [Ranking]
    outputs: dict  # {model tag: OutputId}, as PerImage.outputs
    ranks: list = field(default_factory=list)  # [Ranks]
    seeds: list = field(default_factory=list)  # [SeedSpread]
    correct: list = field(default_factory=list)  # [Subset]: the images whose prediction is the label
    across: list = field(default_factory=list)  # [AcrossModels]
    by_class: list = field(default_factory=list)  # [ClassComparison]: the class as the unit


# ---------------------------------------------------------------- cells and comparisons


def _cell(model, method, game, values) -> Cell:
    return Cell(model, method, game, len(values), *mean_ci(values, n_resamples=N_RESAMPLES, seed=SEED))


def cell_statistics(per_image: PerImage) -> list[Cell]:
    """One Cell per (model tag, method, game)."""
    return [_cell(model, method, game, methods[method][game])
            for model, methods in per_image.values.items() for method in method_order(methods) for game in GAMES]


def table_comparisons(model, game, methods, images=slice(None)) -> list[Comparison]:
    """LA against every other method of one printed table: one model tag, one game, the images
    `images` selects (a slice or a mask) of the methods scored on LA's images. One Holm family."""
    if LEAD not in methods:
        return []
    lead = methods[LEAD][game]
    others = [m for m in method_order(methods) if m != LEAD and methods[m][game].shape == lead.shape]
    if not others or not lead[images].size:
        return []
    rows = np.stack([methods[m][game][images] for m in others])
    lead = lead[images]
    r = paired_family(lead, rows, game, n_resamples=N_RESAMPLES, seed=SEED)
    return [Comparison(model, method, game, lead.size, float(r["mean_diff"][i]), float(r["low"][i]),
                       float(r["high"][i]), float(r["level"][i]), float(r["p"][i]), float(r["p_holm"][i]),
                       r["verdict"][i], win_rate(lead, rows[i], game.higher_is_better), relative_shift(lead, rows[i]))
            for i, method in enumerate(others)]


def comparisons(per_image: PerImage) -> list[Comparison]:
    """LA against each baseline on the same images, one Holm family per model tag and game."""
    return [r for model, methods in per_image.values.items() for game in GAMES
            for r in table_comparisons(model, game, methods)]


def lead_tables(per_image: PerImage):
    """(model tag, game, LA's per-image AUCs, {method: its per-image AUCs}) of every table that
    compares LA with the methods scored on LA's images, in table order."""
    for model, methods in per_image.values.items():
        if LEAD not in methods:
            continue
        for game in GAMES:
            lead = methods[LEAD][game]
            others = {m: methods[m][game] for m in method_order(methods)
                      if m != LEAD and methods[m][game].shape == lead.shape}
            if others:
                yield model, game, lead, others


def headlines(per_image: PerImage) -> list[Headline]:
    """LA's relative improvement over the baselines (scored on LA's images), per model tag and game."""
    found = []
    for model, game, lead, baselines in lead_tables(per_image):
        paper = relative_improvement_ci(lead, baselines, game, n_resamples=N_RESAMPLES, seed=SEED)
        geometric = geometric_improvement_ci(lead, baselines, game, n_resamples=N_RESAMPLES, seed=SEED)
        ratios = baseline_ratios(lead.mean(), {m: v.mean() for m, v in baselines.items()}, game)
        found.append(Headline(model, game, len(lead), len(baselines), *paper, *geometric, ratios))
    return found


# ---------------------------------------------------------------- ranks and their agreement


def _common(methods, names, game, n):
    """[M, n]: the first n per-image AUCs of each of `names`."""
    return np.stack([methods[m][game][:n] for m in names])


def _shortest(methods, names) -> int:
    return min(len(methods[m][GAMES[0]]) for m in names)


def rank_statistics(per_image: PerImage) -> list[Ranks]:
    """Per model tag with two methods or more: each method's rank with its bootstrap interval, per
    game, and the agreement of the insertion and deletion rankings, on the images all scored."""
    found = []
    for model, methods in per_image.values.items():
        names = method_order(methods)
        if len(names) < 2:
            continue
        n = _shortest(methods, names)
        ranks = {}
        for game in GAMES:
            values = _common(methods, names, game, n)
            rank, low, high = rank_intervals(values, game.higher_is_better, n_resamples=N_RESAMPLES, seed=SEED)
            ranks[game] = pd.DataFrame({"mean": values.mean(axis=1), "rank": rank, "low": low, "high": high}, index=names)
        both = agreement(*(_common(methods, names, game, n) for game in GAMES), tuple(g.higher_is_better for g in GAMES))
        found.append(Ranks(model, n, ranks, both))
    return found


def rankings(per_image: PerImage) -> list[Ranking]:
    """A Ranking of every model scored under the paper's protocol and at least one variant: every
    protocol on the first n images all of them scored, tau over the methods both protocols hold."""
    groups = {}
    for tag, methods in per_image.values.items():
        shared, protocol = protocol_of(per_image.outputs[tag])
        groups.setdefault(shared, {})[protocol] = (tag, methods)
    found = []
    for protocols in groups.values():
        if PAPER not in protocols or len(protocols) < 2:
            continue
        names = [PAPER] + sorted(p for p in protocols if p != PAPER)
        scored = {p: protocols[p][1] for p in names}
        n = min(_shortest(scored[p], list(scored[p])) for p in names)
        methods = method_order(m for p in names for m in scored[p])
        means, ranks, tau = {}, {}, {}
        for game in GAMES:
            means[game] = pd.DataFrame(np.nan, index=methods, columns=names)
            for protocol in names:
                for method, values in scored[protocol].items():
                    means[game].loc[method, protocol] = values[game][:n].mean()
            ranks[game] = means[game].rank(ascending=not game.higher_is_better, method="min")
            tau[game] = {}
            for protocol in names[1:]:
                both = list(means[game][[PAPER, protocol]].dropna().index)
                tau[game][protocol] = agreement(_common(scored[PAPER], both, game, n),
                                                _common(scored[protocol], both, game, n), game.higher_is_better) \
                    if len(both) >= 2 else NO_AGREEMENT
        ins_vs_del = {}
        for protocol in names:
            held = method_order(scored[protocol])
            ins_vs_del[protocol] = agreement(*(_common(scored[protocol], held, g, n) for g in GAMES),
                                             tuple(g.higher_is_better for g in GAMES)) if len(held) >= 2 else NO_AGREEMENT
        found.append(Ranking(protocols[PAPER][0], names, n, means, ranks, tau, ins_vs_del))
    return found


# ---------------------------------------------------------------- seeds, subsets, models


def seed_spread(per_image: PerImage, reruns: PerImage, printed: list) -> list[SeedSpread]:
    """Per model tag whose stochastic methods were rerun with other seeds (`reruns`: their per-image
    AUCs, tags ending in -seed<N>): each method's mean AUC under every seed on the first n images
    the reruns scored, and LA's verdict against each method under every seed there (the seed's
    maps for the methods it reran, the seed-0 ones for the others), beside the printed verdict."""
    by_base = {}
    for tag, out in reruns.outputs.items():
        base = replace(out, seed=0).model_tag
        if out.seed and base in per_image.values:
            by_base.setdefault(base, {})[out.seed] = reruns.values[tag]
    found = []
    for base, seeds in by_base.items():
        main = per_image.values[base]
        rerun_methods = method_order(m for methods in seeds.values() for m in methods if m in main)
        n = min([_shortest(main, list(main))] + [_shortest(methods, list(methods)) for methods in seeds.values()])
        order = [0, *sorted(seeds)]
        own = {0: main, **seeds}  # what each seed scored itself
        scored = {s: {m: {g: v[g][:n] for g in GAMES} for m, v in {**main, **own[s]}.items() if m in main}
                  for s in order}
        means, verdicts = {}, {}
        for game in GAMES:
            means[game] = pd.DataFrame({f"seed {s}": [scored[s][m][game].mean() if m in own[s] else np.nan
                                                      for m in rerun_methods] for s in order}, index=rerun_methods)
            columns = {"all images": {r.method: r.verdict for r in printed if r.model == base and r.game is game}}
            columns.update({f"seed {s}": {r.method: r.verdict for r in table_comparisons(base, game, scored[s])}
                            for s in order})
            verdicts[game] = pd.DataFrame(columns).reindex(method_order(main)).drop(index=LEAD, errors="ignore")
        found.append(SeedSpread(base, n, order, means, verdicts))
    return found


def correctly_classified(per_image: PerImage, labels) -> list[Subset]:
    """Per model tag under the paper's metric whose scores files hold the scored classes: the cells
    and LA's comparisons on the images whose prediction is the label (labels: of images 0, 1, ...)."""
    if labels is None:
        return []
    labels = np.asarray(labels)
    found = []
    for model, methods in per_image.values.items():
        classes = per_image.classes.get(model)
        if classes is None or per_image.protocol(model) != PAPER or len(classes) > len(labels):
            continue
        n_all = len(classes)
        correct = classes == labels[:n_all]
        kept = {m: v for m, v in methods.items() if len(v[GAMES[0]]) == n_all}
        if not correct.any() or not kept:
            continue
        cells = [_cell(model, m, game, kept[m][game][correct]) for m in method_order(kept) for game in GAMES]
        versus = [r for game in GAMES for r in table_comparisons(model, game, kept, correct)]
        found.append(Subset(model, n_all, int(correct.sum()), cells, versus))
    return found


def class_comparisons(per_image: PerImage, labels) -> list[ClassComparison]:
    """LA against each method per model tag and game, the images grouped by their label (the
    evaluation set's classes): one Holm family per table, as the image-level comparisons."""
    if labels is None:
        return []
    labels = np.asarray(labels)
    found = []
    for model, game, lead, others in lead_tables(per_image):
        if len(lead) > len(labels):
            continue
        classes = labels[: len(lead)]
        sign = 1 if game.higher_is_better else -1  # LA better: a positive signed difference
        differences = {method: lead - values for method, values in others.items()}
        by_class = {method: class_means(d, classes)[1] for method, d in differences.items()}
        tests = {method: exact_sign_flip_p(v) for method, v in by_class.items()}
        adjusted = holm([p for p, _ in tests.values()])
        for (method, v), (p, se), p_holm in zip(by_class.items(), tests.values(), adjusted):
            mean, low, high = mean_ci(v, n_resamples=N_RESAMPLES, seed=SEED)
            found.append(ClassComparison(model, method, game, len(lead), len(v), mean, low, high, p, se, p_holm,
                                         verdict(game, mean, p_holm), int((sign * v > 0).sum()),
                                         int((sign * v < 0).sum()), sign_test_p(v, np.zeros_like(v)),
                                         hodges_lehmann(v), within_class_correlation(differences[method], classes)))
    return found


def across_models(per_image: PerImage, printed: list) -> list[AcrossModels]:
    """The models scored under one protocol and the same modes (two or more): per game Kendall's tau
    between the method rankings of every pair of models on their common images (the first n both
    scored, over the methods both hold) with its bootstrap interval, and LA's verdicts per model."""
    groups = {}
    for tag, out in per_image.outputs.items():
        groups.setdefault((out.modes, out.seed), []).append(tag)
    found = []
    for tags in groups.values():
        if len(tags) < 2:
            continue
        pairs, verdicts = {}, {}
        for game in GAMES:
            pairs[game] = {}
            for a, b in itertools.combinations(tags, 2):
                first, second = per_image.values[a], per_image.values[b]
                both = method_order(m for m in first if m in second)
                n = min(_shortest(first, both), _shortest(second, both)) if both else 0
                pairs[game][(a, b)] = agreement(_common(first, both, game, n), _common(second, both, game, n),
                                                game.higher_is_better) if len(both) >= 2 else NO_AGREEMENT
            rows = {tag: {r.method: r.verdict for r in printed if r.model == tag and r.game is game} for tag in tags}
            methods = method_order(m for tag in tags for m in rows[tag])
            verdicts[game] = pd.DataFrame(rows).reindex(methods).fillna("-")
        found.append(AcrossModels(per_image.protocol(tags[0]), tags, pairs, verdicts))
    return found


def statistics(per_image: PerImage, reruns: PerImage | None = None, labels=None) -> Statistics:
    """Every statistic of the tables; reruns: the seed reruns' per-image AUCs; labels: the labels of
    the evaluation images, for the correctly classified subset."""
    versus = comparisons(per_image)
    return Statistics(cell_statistics(per_image), versus, headlines(per_image), rankings(per_image), per_image.outputs,
                      rank_statistics(per_image), seed_spread(per_image, reruns, versus) if reruns else [],
                      correctly_classified(per_image, labels), across_models(per_image, versus),
                      class_comparisons(per_image, labels))
