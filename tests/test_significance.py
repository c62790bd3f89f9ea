"""Interval-backed tables (labench.significance, their statistics in labench.stats) on hand-made
scores files with known answers, and the one report command on 2 images and 2 methods."""
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from conftest import load_script, make_images
from labench import significance, stats
from labench.files import save_npz, upsert_csv_row
from labench.identity import OutputId
from labench.scoring import load_scores
from labench.stats import holm
from saliency.metric import DELETION, GAMES, INSERTION

N = 20


def scores_file(folder, out_id, ins, dele):
    """A scores file whose image i has constant curves ins[i] and dele[i] (so its AUC is that value)."""
    ins, dele = np.asarray(ins, np.float64), np.asarray(dele, np.float64)
    save_npz({"ins": ins.mean(), "del": dele.mean(), "ins_curve": np.tile(ins, (225, 1)).astype(np.float32),
              "del_curve": np.tile(dele, (225, 1)).astype(np.float32), "ins_auc": ins, "del_auc": dele,
              "classes": np.arange(len(ins))}, folder / out_id.scores_file)


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
    scores, csv_path = tmp_path / "scores", tmp_path / "results.csv"
    scores.mkdir()
    for modes, methods in [((), paper), (("substrate_blur",), blur)]:
        for method, (ins, dele) in methods.items():
            out = OutputId.make("m", method, modes=modes)
            scores_file(scores, out, ins, dele)
            upsert_csv_row(csv_path, {**out.csv_key(), "insertion": ins.mean(), "deletion": dele.mean()})
    # an LA setting that the tables do not show: never read
    other = OutputId.make("m", "la", params={"spatial_range": 10, "max_iter": 20, "sampling_times": 20})
    scores_file(scores, other, np.zeros(N), np.ones(N))
    upsert_csv_row(csv_path, {**other.csv_key(), "insertion": 0.0, "deletion": 1.0})
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
    cells = stats.cell_statistics(per_image)
    [cell] = [c for c in cells if (c.model, c.method, c.game) == ("m", "ig", DELETION)]
    ci = scipy.stats.bootstrap((paper["ig"][1],), np.mean, n_resamples=10_000, method="BCa",
                               rng=np.random.default_rng(0)).confidence_interval
    assert (cell.n, cell.mean) == (N, pytest.approx(paper["ig"][1].mean()))
    assert (cell.ci_low, cell.ci_high) == pytest.approx((ci.low, ci.high))


def test_la_against_each_baseline_paired_wilcoxon_holm_and_verdicts(hand_run):
    folder, paper, _ = hand_run
    per_image = collected(folder)
    versus = stats.comparisons(per_image)
    paper_rows = {(r.method, r.game): r for r in versus if r.model == "m"}
    for method in ("ig", "sm"):
        for game, k in ((INSERTION, 0), (DELETION, 1)):
            diff = paper["la"][k] - paper[method][k]
            row = paper_rows[(method, game)]
            assert row.la_minus_method == pytest.approx(diff.mean())
            assert row.p_wilcoxon == pytest.approx(scipy.stats.wilcoxon(diff).pvalue)
    for tag in ("m", "m-substrate_blur"):  # one Holm family per table: a game under one metric protocol
        for game in GAMES:
            part = [r for r in versus if r.game is game and r.model == tag]
            assert len(part) == 2 and [r.p_holm for r in part] == pytest.approx(holm([r.p_wilcoxon for r in part]))
    assert paper_rows[("ig", INSERTION)].verdict == "better"
    assert paper_rows[("ig", DELETION)].verdict == "better"  # LA deletes faster: lower is better
    assert paper_rows[("sm", DELETION)].verdict == "n.s."
    worse = stats.verdict(DELETION, +0.05, 0.001)
    assert worse == "worse" and stats.verdict(INSERTION, -0.05, 0.001) == "worse"


def test_headline_is_the_mean_relative_improvement(hand_run):
    folder, paper, _ = hand_run
    per_image = collected(folder)
    heads = {(r.model, r.game): r for r in stats.headlines(per_image)}
    la, ig, sm = (paper[m][0].mean() for m in ("la", "ig", "sm"))
    assert heads[("m", INSERTION)].relative_improvement == pytest.approx(((la - ig) / ig + (la - sm) / sm) / 2)
    la, ig, sm = (paper[m][1].mean() for m in ("la", "ig", "sm"))
    assert heads[("m", DELETION)].relative_improvement == pytest.approx(((ig - la) / ig + (sm - la) / sm) / 2)
    row = heads[("m", INSERTION)]
    assert row.ci_low < row.relative_improvement < row.ci_high


def test_robustness_ranks_on_shared_images_and_kendall_tau(hand_run):
    folder, paper, blur = hand_run
    per_image = collected(folder)
    [entry] = stats.rankings(per_image)
    assert entry.model == "m" and entry.protocols == ["paper", "substrate_blur"] and entry.n == 10
    means = entry.means[INSERTION]
    assert means.loc["ig", "paper"] == pytest.approx(paper["ig"][0][:10].mean())  # the variant's 10 images
    assert entry.ranks[INSERTION]["paper"].to_dict() == {"la": 1, "ig": 2, "sm": 3}
    assert entry.ranks[INSERTION]["substrate_blur"].to_dict() == {"la": 1, "ig": 3, "sm": 2}
    tau, p = entry.tau[INSERTION]["substrate_blur"]
    assert tau == pytest.approx(1 / 3)  # one discordant pair of three
    assert (tau, p) == pytest.approx(tuple(scipy.stats.kendalltau([1, 2, 3], [1, 3, 2])))
    # insertion vs deletion under the paper's protocol: ranks la 1, ig 2, sm 3 against la ~ sm < ig
    ins_rank = [1, 2, 3]
    dele = [paper[m][1][:10].mean() for m in ("la", "ig", "sm")]
    expected = scipy.stats.kendalltau(ins_rank, scipy.stats.rankdata(dele))
    assert entry.ins_vs_del["paper"][0] == pytest.approx(expected.statistic)


def test_a_variant_scored_for_one_method_so_far_has_no_tau_and_does_not_stop_the_tables(hand_run):
    folder, paper, _ = hand_run
    pixel = OutputId.make("m", "la", modes=("order_pixel",))
    scores_file(folder / "scores", pixel, paper["la"][0][:5], paper["la"][1][:5])
    upsert_csv_row(folder / "results.csv", {**pixel.csv_key(), "insertion": 0.5, "deletion": 0.1})
    df = significance.load_results(folder / "results.csv")
    chosen = {tag: (20, 20, 20) for tag in ("m", "m-substrate_blur", "m-order_pixel")}
    [entry] = stats.rankings(significance.collect(df, folder / "scores", chosen))
    assert entry.n == 5 and entry.protocols == ["paper", "order_pixel", "substrate_blur"]
    assert np.isnan(entry.tau[INSERTION]["order_pixel"]).all()
    assert np.isnan(entry.ins_vs_del["order_pixel"]).all()
    assert entry.tau[INSERTION]["substrate_blur"][0] == pytest.approx(1 / 3)
    text = significance.robustness_markdown([entry])
    assert text.count("- (fewer than 2 methods)") == 3  # two games' tau and the insertion-vs-deletion row


def test_statistics_render_in_markdown_latex_and_csv(hand_run):
    folder, paper, _ = hand_run
    text, written = significance.write_statistics(folder / "results.csv", folder / "scores", folder / "tables")
    names = sorted(p.name for p in written)
    assert names == ["robustness.md", "robustness_m.png", "statistics.csv", "statistics.md", "statistics.tex"]
    la = paper["la"][0].mean()
    assert f"{la:.3f} [" in text and "▲" in text and "Kendall tau vs paper" in text
    assert "Insertion (higher is better), the paper's metric: mean AUC" in text
    assert "Deletion (lower is better), metric variant substrate_blur: mean AUC" in text
    assert "Headline, m, insertion: LA's mean relative improvement over 2 baselines +" in text
    tex = (folder / "tables" / "statistics.tex").read_text()
    assert rf"${la:.3f} \pm " in tex and r"\blacktriangle" in tex and tex.count(r"\begin{tabular}") == 4
    table = pd.read_csv(folder / "tables" / "statistics.csv")
    assert {"mean", "ci_low", "ci_high", "la_minus_method", "p_wilcoxon", "p_holm", "verdict"} <= set(table.columns)
    assert len(table) == 2 * 3 * 2 + 2 * 2  # (model tag, method, game) cells + headlines


def test_tables_cli_adds_the_statistics_from_the_scores_folder(hand_run, capsys):
    folder, _, _ = hand_run
    load_script("tables").main(["--csv", str(folder / "results.csv"), "--scores_prefix", str(folder / "scores"),
                                "--out", str(folder / "t"), "--no_plot"])
    printed = capsys.readouterr().out
    assert "mean AUC [95% bootstrap CI]" in printed and (folder / "t" / "statistics.csv").exists()
    assert "95% bootstrap CI" in (folder / "t" / "tables.md").read_text()


def test_report_on_two_images_and_two_methods(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    import torch

    torch.save(make_images(2, size=32), tmp_path / "data" / "img_batch.pt")
    torch.save(torch.tensor([1, 2]), tmp_path / "data" / "label_batch.pt")
    argv = ["--images", "2", "--methods", "la", "sm", "--variants", "blur", "--max_iter", "2", "--sampling_times",
            "3", "--device", "cpu", "--out", "rep"]
    load_script("report").main(argv)
    readme = (tmp_path / "rep" / "README.md").read_text()
    assert "first 2 images" in readme and "variants blur on the first 2" in readme and "| maps la |" in readme
    assert "Kendall tau vs paper" in readme and "mean AUC [95% bootstrap CI]" in readme
    scores = load_scores(tmp_path / "rep" / "scores" / "efficientnet_lite0-substrate_blur_sm_scores.npz")
    assert scores["ins_auc"].shape == (2,) and scores["classes"].shape == (2,)
    rows = (tmp_path / "rep" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    before = (tmp_path / "rep" / "timings.json").read_text()
    load_script("report").main(argv)  # everything on disk: nothing recomputed
    assert (tmp_path / "rep" / "results.csv").read_text().splitlines() == rows
    assert before.count("maps la") == 1
    load_script("report").main([*argv, "--methods", "la", "sm", "ig", "--tables_only"])  # computes nothing
    assert not list((tmp_path / "rep" / "attributions").glob("*_ig_*"))
    assert (tmp_path / "rep" / "results.csv").read_text().splitlines() == rows


def test_scores_files_hold_per_image_aucs_and_classes_and_variants_are_tagged(tmp_path, monkeypatch):
    import torch

    from labench.models import load_model
    from saliency import InsertionDeletion, auc, probability_model

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
    direct = InsertionDeletion(probability_model(model), batch_size=4, substrate="blur", order="pixel").curves(
        images[:1], maps)
    assert np.allclose(variant["ins_curve"], direct["ins"].numpy(), atol=1e-6)
    assert np.allclose(variant["del_curve"], direct["del"].numpy(), atol=1e-6)
    rows = (tmp_path / "results.csv").read_text()
    assert "efficientnet_lite0-substrate_blur-order_pixel,sm," in rows
