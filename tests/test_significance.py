"""Interval-backed tables (labench.present.significance, their statistics in labench.stats.analysis and
labench.stats.inference) on hand-made scores files with known answers, and the one report command on 2
images and 2 methods, and on 2 models."""
import time

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from conftest import load_script, make_images
from labench.stats import analysis
from labench.present import significance
from labench.store.files import save_npz, upsert_csv_row
from labench.spec.identity import OutputId
from labench.compute.scoring import load_scores
from labench.stats.inference import holm, sign_flip_p, verdict
from saliency.metric import DELETION, GAMES, INSERTION

N = 20


def scores_file(folder, out_id, ins, dele):
    """A scores file whose image i has constant curves ins[i] and dele[i] (so its AUC is that value);
    image i was scored as class i."""
    ins, dele = np.asarray(ins, np.float64), np.asarray(dele, np.float64)
    save_npz({"ins": ins.mean(), "del": dele.mean(), "ins_curve": np.tile(ins, (225, 1)).astype(np.float32),
              "del_curve": np.tile(dele, (225, 1)).astype(np.float32), "ins_auc": ins, "del_auc": dele,
              "classes": np.arange(len(ins))}, folder / out_id.scores_file)


def add_row(folder, out_id, ins, dele, csv="results.csv"):
    scores_file(folder / "scores", out_id, ins, dele)
    upsert_csv_row(folder / csv, {**out_id.csv_key(), "insertion": np.mean(ins), "deletion": np.mean(dele)})


@pytest.fixture
def hand_run(tmp_path):
    """LA clearly best in insertion; in deletion LA and SM tie up to symmetric noise, IG is worse.
    A blur variant on the first 10 images swaps IG and SM in insertion."""
    rng = np.random.default_rng(0)
    noise = lambda: rng.normal(0, 0.01, N)  # noqa: E731
    paper = {"la": (0.6 + noise(), 0.1 + noise()), "ig": (0.5 + noise(), 0.2 + noise()),
             "sm": (0.3 + noise(), 0.1 + noise())}
    blur = {"la": (0.7 + noise()[:10], 0.1 + noise()[:10]), "ig": (0.2 + noise()[:10], 0.3 + noise()[:10]),
            "sm": (0.4 + noise()[:10], 0.2 + noise()[:10])}
    (tmp_path / "scores").mkdir()
    for modes, methods in [((), paper), (("substrate_blur",), blur)]:
        for method, (ins, dele) in methods.items():
            add_row(tmp_path, OutputId.make("m", method, modes=modes), ins, dele)
    # an LA setting that the tables do not show: never read
    other = OutputId.make("m", "la", params={"spatial_range": 10, "max_iter": 20, "sampling_times": 20})
    add_row(tmp_path, other, np.zeros(N), np.ones(N))
    return tmp_path, paper, blur


def collected(folder):
    """The per-image AUCs of the hand-made run, LA at the setting the tables show."""
    df = significance.load_results(folder / "results.csv")
    return significance.collect(df, folder / "scores", {"m": (20, 20, 20), "m-substrate_blur": (20, 20, 20)})


def test_every_cell_is_the_mean_with_scipys_bca_interval(hand_run):
    folder, paper, _ = hand_run
    per_image = collected(folder)
    assert set(per_image.values) == {"m", "m-substrate_blur"}
    assert np.array_equal(per_image.values["m"]["la"][INSERTION], paper["la"][0])  # the shown setting, not r=10
    cells = analysis.cell_statistics(per_image)
    [cell] = [c for c in cells if (c.model, c.method, c.game) == ("m", "ig", DELETION)]
    ci = scipy.stats.bootstrap((paper["ig"][1],), np.mean, n_resamples=10_000, method="BCa",
                               rng=np.random.default_rng(0)).confidence_interval
    assert (cell.n, cell.mean) == (N, pytest.approx(paper["ig"][1].mean()))
    assert (cell.ci_low, cell.ci_high) == pytest.approx((ci.low, ci.high))


def test_la_against_each_baseline_paired_sign_flip_holm_and_verdicts(hand_run):
    folder, paper, _ = hand_run
    per_image = collected(folder)
    versus = analysis.comparisons(per_image)
    paper_rows = {(r.method, r.game): r for r in versus if r.model == "m"}
    for method in ("ig", "sm"):
        for game, k in ((INSERTION, 0), (DELETION, 1)):
            diff = paper["la"][k] - paper[method][k]
            row = paper_rows[(method, game)]
            assert row.la_minus_method == pytest.approx(diff.mean())
            assert row.p_value == scipy.stats.permutation_test(
                (diff,), np.mean, permutation_type="samples", n_resamples=10_000, rng=np.random.default_rng(0)).pvalue
            wins = (paper["la"][k] > paper[method][k]) if game.higher_is_better else (paper["la"][k] < paper[method][k])
            assert row.win_rate == pytest.approx(wins.mean())
            assert row.shift == pytest.approx(np.median(diff / (paper["la"][k] + paper[method][k])))
    for tag in ("m", "m-substrate_blur"):  # one Holm family per table: a model tag and a game
        for game in GAMES:
            part = [r for r in versus if r.game is game and r.model == tag]
            assert len(part) == 2 and [r.p_holm for r in part] == pytest.approx(holm([r.p_value for r in part]))
    assert paper_rows[("ig", INSERTION)].verdict == "better"
    assert paper_rows[("ig", DELETION)].verdict == "better"  # LA deletes faster: lower is better
    assert paper_rows[("sm", DELETION)].verdict == "n.s."
    assert verdict(DELETION, +0.05, 0.001) == "worse" and verdict(INSERTION, -0.05, 0.001) == "worse"
    for r in versus:  # the interval and the verdict of one test: 0 outside exactly where LA is better or worse
        assert (r.diff_low > 0 or r.diff_high < 0) == (r.verdict != "n.s.")
        assert r.diff_low <= r.la_minus_method <= r.diff_high


def test_a_published_or_fast_row_never_enters_the_default_tables_family(hand_run):
    """Regression (issue 22): the -published runs joined the default table's Holm family."""
    folder, paper, _ = hand_run
    rng = np.random.default_rng(5)
    for modes in (("published",), ("fast",)):
        for method in ("la", "ig", "sm", "eg"):
            add_row(folder, OutputId.make("m", method, modes=modes), rng.uniform(0.1, 0.9, N), rng.uniform(0.1, 0.9, N))
    df = significance.load_results(folder / "results.csv")
    chosen = {tag: (20, 20, 20) for tag in df["model"].unique()}
    versus = analysis.comparisons(significance.collect(df, folder / "scores", chosen))
    for game in GAMES:
        default = [r for r in versus if r.model == "m" and r.game is game]
        assert [r.method for r in default] == ["ig", "sm"]
        raw = [sign_flip_p(paper["la"][game is DELETION] - paper[r.method][game is DELETION])[0] for r in default]
        assert [r.p_holm for r in default] == pytest.approx(holm(raw))  # 2 comparisons, not 2 + 3 + 3
        for tag in ("m-published", "m-fast"):
            assert [r.method for r in versus if r.model == tag and r.game is game] == ["eg", "ig", "sm"]


def test_headline_is_the_mean_relative_improvement(hand_run):
    folder, paper, _ = hand_run
    per_image = collected(folder)
    heads = {(r.model, r.game): r for r in analysis.headlines(per_image)}
    la, ig, sm = (paper[m][0].mean() for m in ("la", "ig", "sm"))
    assert heads[("m", INSERTION)].relative_improvement == pytest.approx(((la - ig) / ig + (la - sm) / sm) / 2)
    la, ig, sm = (paper[m][1].mean() for m in ("la", "ig", "sm"))
    assert heads[("m", DELETION)].relative_improvement == pytest.approx(((ig - la) / ig + (sm - la) / sm) / 2)
    row = heads[("m", INSERTION)]
    assert row.ci_low < row.relative_improvement < row.ci_high
    la, ig, sm = (paper[m][0].mean() for m in ("la", "ig", "sm"))
    assert row.ratios == pytest.approx({"ig": (la - ig) / ig, "sm": (la - sm) / sm})
    assert row.geometric == pytest.approx(np.sqrt(la / ig * la / sm) - 1)
    assert row.geometric_low < row.geometric < row.geometric_high
    la, ig, sm = (paper[m][1].mean() for m in ("la", "ig", "sm"))
    assert heads[("m", DELETION)].geometric == pytest.approx(np.sqrt(ig / la * sm / la) - 1)


def test_robustness_ranks_on_shared_images_and_kendall_tau(hand_run):
    folder, paper, blur = hand_run
    per_image = collected(folder)
    [entry] = analysis.rankings(per_image)
    assert entry.model == "m" and entry.protocols == ["paper", "substrate_blur"] and entry.n == 10
    means = entry.means[INSERTION]
    assert means.loc["ig", "paper"] == pytest.approx(paper["ig"][0][:10].mean())  # the variant's 10 images
    assert entry.ranks[INSERTION]["paper"].to_dict() == {"la": 1, "ig": 2, "sm": 3}
    assert entry.ranks[INSERTION]["substrate_blur"].to_dict() == {"la": 1, "ig": 3, "sm": 2}
    blur_tau = entry.tau[INSERTION]["substrate_blur"]
    assert blur_tau.tau == pytest.approx(1 / 3)  # one discordant pair of three
    assert (blur_tau.tau, blur_tau.p) == pytest.approx(tuple(scipy.stats.kendalltau([1, 2, 3], [1, 3, 2])))
    assert blur_tau.low <= blur_tau.tau <= blur_tau.high and blur_tau.n == 10
    assert blur_tau.reading.startswith("n.s.")  # p = 1 with three methods: no evidence either way
    # insertion vs deletion under the paper's protocol: ranks la 1, ig 2, sm 3 against la ~ sm < ig
    ins_rank = [1, 2, 3]
    dele = [paper[m][1][:10].mean() for m in ("la", "ig", "sm")]
    expected = scipy.stats.kendalltau(ins_rank, scipy.stats.rankdata(dele))
    assert entry.ins_vs_del["paper"].tau == pytest.approx(expected.statistic)


def test_a_variant_scored_for_one_method_so_far_has_no_tau_and_does_not_stop_the_tables(hand_run):
    folder, paper, _ = hand_run
    pixel = OutputId.make("m", "la", modes=("order_pixel",))
    scores_file(folder / "scores", pixel, paper["la"][0][:5], paper["la"][1][:5])
    upsert_csv_row(folder / "results.csv", {**pixel.csv_key(), "insertion": 0.5, "deletion": 0.1})
    df = significance.load_results(folder / "results.csv")
    chosen = {tag: (20, 20, 20) for tag in ("m", "m-substrate_blur", "m-order_pixel")}
    [entry] = analysis.rankings(significance.collect(df, folder / "scores", chosen))
    assert entry.n == 5 and entry.protocols == ["paper", "order_pixel", "substrate_blur"]
    assert np.isnan(entry.tau[INSERTION]["order_pixel"].tau)
    assert np.isnan(entry.ins_vs_del["order_pixel"].tau)
    assert entry.tau[INSERTION]["substrate_blur"].tau == pytest.approx(1 / 3)
    text = significance.robustness_markdown([entry])
    assert text.count("- (fewer than 2 methods)") == 3  # two games' tau and the insertion-vs-deletion row


def test_statistics_render_in_markdown_latex_and_csv(hand_run):
    folder, paper, _ = hand_run
    text, written = significance.write_statistics(folder / "results.csv", folder / "scores", folder / "tables")
    names = sorted(p.name for p in written)
    assert names == ["headlines.md", "ranks.md", "robustness.md", "robustness_m.png", "statistics.csv",
                     "statistics.md", "statistics.tex"]
    la = paper["la"][0].mean()
    assert f"{la:.3f} [" in text and "▲" in text and "Kendall tau vs paper" in text
    assert "Insertion (higher is better), the paper's metric: mean AUC" in text
    assert "Deletion (lower is better), metric variant substrate_blur: mean AUC" in text
    assert "Headline, m, insertion: LA's mean relative improvement over 2 baselines +" in text
    assert "geometric mean of LA's ratios +" in text and "near 0" in text and "rank (1 = best)" in text
    tex = (folder / "tables" / "statistics.tex").read_text()
    assert rf"${la:.3f} \pm " in tex and r"\blacktriangle" in tex and tex.count(r"\begin{tabular}") == 4
    table = pd.read_csv(folder / "tables" / "statistics.csv")
    assert {"mean", "ci_low", "ci_high", "rank", "rank_low", "rank_high", "la_minus_method", "diff_level",
            "p_permutation", "p_holm", "verdict", "win_rate", "shift"} <= set(table.columns)
    assert len(table) == 2 * 3 * 2 + 2 * 2 * 2  # (model tag, method, game) cells + two headline forms
    la_row = table[(table.model == "m") & (table.method == "la") & (table.game == "insertion")].iloc[0]
    assert la_row["rank"] == 1 and la_row["rank_low"] == 1


def test_tables_cli_adds_the_statistics_from_the_scores_folder(hand_run, capsys):
    folder, _, _ = hand_run
    load_script("tables").main(["--csv", str(folder / "results.csv"), "--scores_prefix", str(folder / "scores"),
                                "--out", str(folder / "t"), "--no_plot"])
    printed = capsys.readouterr().out
    assert "mean AUC [95% bootstrap CI]" in printed and (folder / "t" / "statistics.csv").exists()
    assert "95% bootstrap CI" in (folder / "t" / "tables.md").read_text()


def test_the_correctly_classified_images_get_their_own_cells_and_family(hand_run, capsys):
    import torch

    folder, paper, _ = hand_run
    labels = np.arange(N)
    labels[:5] += 1  # images 0..4 were scored as classes 0..4 (scores_file), their labels differ
    [subset] = analysis.correctly_classified(collected(folder), labels)
    correct = np.arange(N) >= 5
    assert (subset.model, subset.n_all, subset.n) == ("m", N, 15)
    [cell] = [c for c in subset.cells if (c.method, c.game) == ("ig", INSERTION)]
    assert cell.mean == pytest.approx(paper["ig"][0][correct].mean())
    rows = [r for r in subset.comparisons if r.game is DELETION]
    diffs = [paper["la"][1][correct] - paper[m][1][correct] for m in ("ig", "sm")]
    assert [r.la_minus_method for r in rows] == pytest.approx([d.mean() for d in diffs])
    assert [r.p_holm for r in rows] == pytest.approx(holm([sign_flip_p(d)[0] for d in diffs]))
    (folder / "d").mkdir()
    torch.save(torch.tensor(labels), folder / "d" / "label_batch.pt")
    load_script("tables").main(["--csv", str(folder / "results.csv"), "--scores_prefix", str(folder / "scores"),
                                "--out", str(folder / "t"), "--no_plot", "--data_dir", str(folder / "d")])
    assert "on the 15 of 20 images whose prediction is the label" in (folder / "t" / "correct.md").read_text()


def test_seed_spread_and_a_verdict_that_changes_with_the_seed(hand_run):
    """LA rerun with seed 1 on the first 12 images: in deletion it now beats SM, with which it tied."""
    folder, paper, _ = hand_run
    seeded = OutputId.make("m", "la", seed=1)
    assert seeded.model_tag == "m-seed1"
    add_row(folder, seeded, paper["la"][0][:12] + 0.01, paper["la"][1][:12] - 0.05, csv="reruns.csv")
    text, written = significance.write_statistics(folder / "results.csv", folder / "scores", folder / "t",
                                                  plots=False, reruns_csv=folder / "reruns.csv")
    [spread] = analysis.seed_spread(collected(folder), significance.collect_results(folder / "reruns.csv",
                                                                                     folder / "scores"),
                                    analysis.comparisons(collected(folder)))
    assert (spread.model, spread.n, spread.seeds) == ("m", 12, [0, 1])
    assert spread.means[DELETION].loc["la"].tolist() == pytest.approx([paper["la"][1][:12].mean(),
                                                                       paper["la"][1][:12].mean() - 0.05])
    assert spread.verdicts[DELETION].loc["sm"].tolist() == ["n.s.", "n.s.", "better"]  # printed, seed 0, seed 1
    assert spread.changed(DELETION) == ["sm"] and spread.changed(INSERTION) == []
    seeds = (folder / "t" / "seeds.md").read_text()
    assert "Verdicts that change with the seed: SM." in seeds and "No verdict changes with the seed." in seeds
    assert "m-seed1" not in (folder / "t" / "statistics.md").read_text()  # the reruns are no rows of the tables


def evaluation_set(folder, labels, n=2):
    import torch

    (folder / "data").mkdir()
    torch.save(make_images(n, size=32), folder / "data" / "img_batch.pt")
    torch.save(torch.tensor(labels), folder / "data" / "label_batch.pt")


def test_report_on_two_images_and_two_methods(tmp_path, monkeypatch, lite0):
    import torch

    monkeypatch.chdir(tmp_path)
    with torch.no_grad():
        predicted = lite0(make_images(2, size=32)).argmax(1).tolist()
    evaluation_set(tmp_path, [predicted[0], (predicted[1] + 1) % 1000])  # image 0 is classified correctly, 1 not
    argv = ["--images", "2", "--methods", "la", "sm", "--variants", "blur", "--max_iter", "2", "--sampling_times",
            "3", "--device", "cpu", "--out", "rep"]
    load_script("report").main(argv)
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert "first 2 images" in readme and "variants blur on the first 2" in readme
    assert "| stage | efficientnet_lite0 |" in readme and "| maps la | " in readme
    assert "Kendall tau vs paper" in readme and "mean AUC [95% bootstrap CI]" in readme
    assert "on the 1 of 2 images whose prediction is the label" in readme and "seed reruns: none" in readme
    assert "- device: CPU (" in readme
    assert "rank (1 = best)" in readme and "baseline by baseline" in readme
    scores = load_scores(tmp_path / "rep" / "scores" / "efficientnet_lite0-substrate_blur_sm_scores.npz")
    assert scores["ins_auc"].shape == (2,) and scores["classes"].shape == (2,)
    rows = (tmp_path / "rep" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    before = (tmp_path / "rep" / "timings.json").read_text()
    load_script("report").main(argv)  # everything on disk: nothing recomputed
    assert (tmp_path / "rep" / "results.csv").read_text().splitlines() == rows
    assert before.count("maps efficientnet_lite0 la") == 1
    load_script("report").main([*argv, "--methods", "la", "sm", "ig", "--tables_only"])  # computes nothing
    assert "- device: not this --tables_only run's" in (tmp_path / "rep" / "README.md").read_text()
    assert not list((tmp_path / "rep" / "attributions").glob("*_ig_*"))
    assert (tmp_path / "rep" / "results.csv").read_text().splitlines() == rows
    # the seed reruns: LA again (sm's maps do not depend on the seed) on the first image, in their own rows
    load_script("report").main([*argv, "--seed_reruns", "1", "--seed_images", "1"])
    assert (tmp_path / "rep" / "results.csv").read_text().splitlines() == rows
    [rerun] = (tmp_path / "rep" / "seed_reruns.csv").read_text().splitlines()[1:]
    assert rerun.startswith("efficientnet_lite0-seed1,la,20,2,3,")
    maps = np.load(tmp_path / "rep" / "attributions" /
                   "efficientnet_lite0-seed1_la_spatial-range-20_max-iter-2_sampling-times-3_attributions.npy")
    seed0 = np.load(tmp_path / "rep" / "attributions" /
                    "efficientnet_lite0_la_spatial-range-20_max-iter-2_sampling-times-3_attributions.npy")
    assert maps.shape == (1, 3, 32, 32) and not np.array_equal(maps[0], seed0[0])
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert "## Seed spread" in readme and "seed reruns: la (the methods whose maps depend on the seed)" in readme
    seeds = (tmp_path / "rep" / "tables" / "seeds.md").read_text()
    assert "| method | seed 0 | seed 1 | SD over seeds | max - min |" in seeds and "changes with the seed" in seeds


def test_seed_reruns_need_fixed_weights_and_other_seeds():
    from labench.flows import report
    from labench.errors import UserError

    with pytest.raises(UserError, match="needs fixed weights"):
        report.plan(report.Request(weights="random", seed_reruns=(1,)))
    with pytest.raises(UserError, match="other than --seed"):
        report.plan(report.Request(seed_reruns=(0, 2)))
    assert report.Request(methods=("sm", "eg", "la"), seed_reruns=(1,)).rerun_methods == ["la", "eg"]


def test_report_across_two_models(tmp_path, monkeypatch):
    """2 models x 2 methods x 2 images: one set of tables whose rows are the models, each model's
    own comparisons, and their agreement."""
    monkeypatch.chdir(tmp_path)
    evaluation_set(tmp_path, [1, 2])
    load_script("report").main(["--model", "efficientnet_lite0", "resnet18", "--weights", "random", "--images", "2",
                                "--methods", "la", "sm", "--variants", "--max_iter", "2", "--sampling_times", "3",
                                "--device", "cpu", "--out", "rep"])
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert readme.startswith("# Report: efficientnet_lite0, resnet18, 2 evaluation images")
    assert "| stage | efficientnet_lite0 | resnet18 |" in readme and "| scores paper sm | " in readme
    statistics = (tmp_path / "rep" / "tables" / "statistics.md").read_text()
    assert "| efficientnet_lite0-random | 2 |" in statistics and "| resnet18-random | 2 |" in statistics
    assert "**resnet18-random, Insertion (higher is better), the paper's metric: LA minus each method" in statistics
    models = (tmp_path / "rep" / "tables" / "models.md").read_text()
    assert "| efficientnet_lite0-random | resnet18-random | insertion | 2 |" in models
    assert "which verdicts hold on how many of the 2 models" in models and "| verdict | on both | on one |" in models
    insertion = (tmp_path / "rep" / "tables" / "insertion.md").read_text()
    assert insertion.count("-random |") == 2


def test_scores_files_hold_per_image_aucs_and_classes_and_variants_are_tagged(tmp_path, monkeypatch):
    import torch

    from labench.nets.models import load_model
    from saliency import InsertionDeletion, auc

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    images = make_images(2, size=32)
    torch.save(images, tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), tmp_path / "data" / "label_batch.pt")
    common = ["--attr_method", "sm", "--device", "cpu"]
    load_script("generate_attributions").main(common)
    load_script("eval").main(common)
    load_script("eval").main([*common, "--substrate", "blur", "--order", "pixel", "--limit", "1"])
    scores = load_scores("scores/efficientnet_lite0_sm_scores.npz")
    for game in ("ins", "del"):
        assert scores[f"{game}_auc"] == pytest.approx([auc(scores[f"{game}_curve"][:, i]) for i in range(2)])
        assert scores[f"{game}_auc"].mean() == pytest.approx(float(scores[game]), abs=1e-9)
    model = load_model("efficientnet_lite0")
    with torch.no_grad():
        assert scores["classes"].tolist() == model(images).argmax(1).tolist()
    variant = load_scores("scores/efficientnet_lite0-substrate_blur-order_pixel_sm_scores.npz")
    maps = torch.from_numpy(np.load("attributions/efficientnet_lite0_sm_attributions.npy")[:1])
    direct = InsertionDeletion(model, batch_size=4, substrate="blur", order="pixel").curves(
        images[:1], maps)
    assert np.allclose(variant["ins_curve"], direct["ins"].numpy(), atol=1e-6)
    assert np.allclose(variant["del_curve"], direct["del"].numpy(), atol=1e-6)
    rows = (tmp_path / "results.csv").read_text()
    assert "efficientnet_lite0-substrate_blur-order_pixel,sm," in rows


def test_models_with_different_image_counts_agree_on_their_common_images(tmp_path):
    """lite0 kept on 64 images beside models run on 32 (one --out, then --tables_only across all):
    each model's table uses its own images, the agreement of two models the first n both scored."""
    rng = np.random.default_rng(1)
    long = {m: (rng.uniform(0, 1, N), rng.uniform(0, 1, N)) for m in ("la", "ig", "sm")}
    short = {m: (rng.uniform(0, 1, 10), rng.uniform(0, 1, 10)) for m in ("la", "ig", "sm")}
    (tmp_path / "scores").mkdir()
    for model, methods in (("a", long), ("b", short)):
        for method, (ins, dele) in methods.items():
            add_row(tmp_path, OutputId.make(model, method), ins, dele)
    per_image = significance.collect(significance.load_results(tmp_path / "results.csv"), tmp_path / "scores",
                                     {"a": (20, 20, 20), "b": (20, 20, 20)})
    stats = analysis.statistics(per_image)
    assert {(c.model, c.n) for c in stats.cells} == {("a", N), ("b", 10)}
    [across] = stats.across
    tau = across.agreement[INSERTION][("a", "b")]
    first = {m: {g: v[k][:10] for k, g in enumerate(GAMES)} for m, v in long.items()}
    second = {m: {g: v[k] for k, g in enumerate(GAMES)} for m, v in short.items()}
    expected = analysis.agreement(analysis._common(first, list(long), INSERTION, 10),
                                  analysis._common(second, list(short), INSERTION, 10), True)
    assert tau.n == 10 and (tau.tau, tau.low, tau.high) == pytest.approx((expected.tau, expected.low, expected.high))
    # the report's README says what each model ran when the models ran apart: a with a variant and a
    # seed rerun on fewer images, b on the paper's metric only (its -published row is not the report's)
    import torch

    from labench.flows import report
    from labench.spec.run import Run

    add_row(tmp_path, OutputId.make("a", "ig", modes=("substrate_blur",)), long["ig"][0][:5], long["ig"][1][:5])
    add_row(tmp_path, OutputId.make("a", "la", seed=1), long["la"][0][:4], long["la"][1][:4], csv="seed_reruns.csv")
    add_row(tmp_path, OutputId.make("b", "la", modes=("published",)), short["la"][0], short["la"][1])
    base = Run(csv_path=tmp_path / "results.csv", scores_dir=tmp_path / "scores")
    scored = report.scored_images(base, ("a", "b"), tmp_path / "seed_reruns.csv")
    # a report of b alone in this shared --out: a's rows are in none of its tables
    from labench.present.significance import write_statistics
    from labench.present.tables import write_tables

    tables, _ = write_tables(base.csv_path, tmp_path / "b_only", plots=False, models=("b",))
    statistics_md, _ = write_statistics(base.csv_path, base.scores_dir, tmp_path / "b_only", plots=False,
                                        reruns_csv=tmp_path / "seed_reruns.csv", models=("b",))
    assert "| b |" in tables and "| a |" not in tables and "| a" not in statistics_md and "**b, " in statistics_md
    assert report.scored_images(base, ("b",), tmp_path / "seed_reruns.csv") == {"b": {"paper": 10}}
    assert scored == {"a": {"paper": N, "blur": 5, "seed 1": 4}, "b": {"paper": 10}}
    evaluation_set(tmp_path, [1, 2])
    request = report.Request(models=("a", "b"), images=N, out=str(tmp_path / "rep"), data_dir=str(tmp_path / "data"),
                             variants=("blur",), variant_images=5, seed_reruns=(1,), seed_images=4)

    def readme(scored):
        return report.write_readme(request, ["la"], ["blur"], 5, torch.device("cpu"), {}, 0.0, [], scored).read_text()

    text = readme(scored)
    assert text.startswith(f"# Report: a ({N} images), b (10 images)\n")
    assert (f"- what each model ran (each with its own command into this --out): a: the paper's metric on {N} images, "
            "blur on 5, seed 1 on 4; b: the paper's metric on 10 images\n") in text
    assert ("224 steps); variants blur; forward passes on a CPU in OpenVINO or ONNX Runtime where installed "
            "(--runtime auto); which model on how many images: 'what each model ran' above\n"
            "- seed reruns: la, attexplore, eg, sg (the methods whose maps depend on the seed) again with seed 1 on "
            "the first 4 images, under the paper's metric; their rows are in `seed_reruns.csv` (eg draws from all "
            f"{N} images, as the seed-0 run); which model") in text
    assert f"first {N} images" not in text.split("- evaluation set")[0]
    same = readme({"a": scored["a"], "b": scored["a"]})  # both as planned: the one count of the request
    assert same.startswith(f"# Report: a, b, {N} evaluation images\n") and "what each model ran" not in same
    assert f"224 steps) on {N} images; variants blur on the first 5" in same


def test_timings_of_two_reports_in_one_folder_keep_both_stages(tmp_path):
    """Two report processes (say lite1 and lite2) writing into one --out: neither loses the other's
    seconds, and a stage run twice adds up."""
    from labench.flows.report import Timings

    first, second = Timings(tmp_path / "timings.json"), Timings(tmp_path / "timings.json")
    first.run("maps a la", lambda: None)
    second.run("maps b la", lambda: None)
    first.run("maps a la", lambda: None)
    seconds = Timings(tmp_path / "timings.json").seconds
    assert set(seconds) == {"maps a la", "maps b la"} and first.seconds == seconds


def test_an_interrupted_stage_keeps_its_seconds(tmp_path):
    from labench.flows.report import Timings

    def interrupted():
        time.sleep(0.2)
        raise KeyboardInterrupt

    timings = Timings(tmp_path / "timings.json")
    with pytest.raises(KeyboardInterrupt):
        timings.run("maps a la", interrupted)
    [(stage, seconds)] = Timings(tmp_path / "timings.json").seconds.items()
    assert stage == "maps a la" and seconds >= 0.2


def test_stage_table_has_a_column_per_model_and_their_totals():
    from labench.flows.report import stage_table

    seconds = {"maps a la": 7200.0, "scores a paper la": 10.0, "maps b sm": 1.5, "maps a seed 1 la": 36.0,
               "maps a sm": 2.0, "maps c la": 5.0, "scores a blur sm": 4.0}
    assert stage_table(seconds, ("a", "b")) == [
        "| stage | a | b |", "| --- | --- | --- |",
        "| maps la | 7200.0 | - |", "| maps sm | 2.0 | 1.5 |", "| scores paper la | 10.0 | - |",
        "| scores blur sm | 4.0 | - |", "| maps seed 1 la | 36.0 | - |",
        "| all stages | 7252 (2.0 h) | 2 (0.0 h) |"]


def test_printed_comparisons_check_out_for_a_reader(hand_run):
    """Every 'LA minus each method' table as printed: Holm p from the table's own raw p-values, and
    no interval or Holm p that contradicts its verdict (tests/printed.py reads the Markdown)."""
    from printed import comparison_tables, holm, problems

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    folder, _, _ = hand_run
    text, _ = significance.write_statistics(folder / "results.csv", folder / "scores", folder / "tables")
    tables = comparison_tables(text)
    assert [len(t) for t in tables] == [2, 2, 2, 2]  # paper and blur, insertion and deletion: IG and SM each
    assert {row["LA is"] for t in tables for row in t} >= {"better", "n.s."}
    assert [problems(t) for t in tables] == [[], [], [], []]
    broken = [dict(row) for row in tables[0]]
    broken[0]["p (Holm)"] = broken[0]["p (sign-flip)"]  # unadjusted: a reader sees it
    broken[1]["LA is"] = "n.s." if broken[1]["LA is"] != "n.s." else "better"
    assert len(problems(broken)) >= 2


def test_results_document_gets_the_report_between_its_markers(tmp_path):
    """--results: the README into a document's marked block, headings one level down, the prose
    around it kept; a document without the markers is refused before any work, naming the fix."""
    from labench.flows import report
    from labench.errors import UserError

    readme = "# Report: m, 2 evaluation images\n\n- data\n\n## Seed spread\n\n| a | b |\n"
    new = report.publish(readme, tmp_path / "new.md")
    assert new.read_text() == f"{report.BEGIN}\n## Report: m, 2 evaluation images\n\n- data\n\n### Seed spread\n\n" \
                              f"| a | b |\n{report.END}\n"
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Results\n\nProse before.\n\n{report.BEGIN}\nold tables\n{report.END}\n\nProse after.\n")
    report.publish(readme, doc)
    text = doc.read_text()
    assert text.startswith("# Results\n\nProse before.\n\n" + report.BEGIN)
    assert text.endswith(report.END + "\n\nProse after.\n")
    assert "old tables" not in text and "### Seed spread" in text
    report.publish(readme.replace("- data", "- other data"), doc)  # again: one block, replaced
    assert doc.read_text().count(report.BEGIN) == 1 and "- other data" in doc.read_text()
    unmarked = tmp_path / "prose.md"
    unmarked.write_text("# Results\n\nno markers\n")
    with pytest.raises(UserError, match="add them where the report's tables go"):
        report.plan(report.Request(results=str(unmarked)))
    assert unmarked.read_text() == "# Results\n\nno markers\n"
