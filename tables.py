"""results.csv as the paper's tables, and the LA parameter grid.

    python tables.py                       # reads results.csv, writes tables/, prints Markdown
    python tables.py --csv x.csv --out t --la 10,20,30 --digits 3

Main tables: one for Insertion (higher is better), one for Deletion (lower is better); rows are
models, columns the methods in the paper's order (LA, AGI, AttEXplore, BIG, DeepLIFT, EG, FIG,
GIG, IG, MFABA, SG, SM); the best value of each row is bold; a missing cell is '-'. LA's column
takes one setting per model: `--la default` (r=20, T=20, S=20 when present, else the setting with
the best insertion), `--la best` (best insertion) or `--la R,T,S`.

LA grid: for each model, Insertion and Deletion against spatial_range x max_iter (rows) and
sampling_times (columns), and a figure with one panel per spatial_range (AUC against max_iter, a
line per sampling_times; insertion on top, deletion below).

Files written under --out: tables.md (everything printed), insertion.md, deletion.md,
insertion.tex, deletion.tex, la_grid.md, la_grid_<model>.png.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from saliency.saliency_zoo import PAPER_ORDER
from utils import CSV_COLUMNS, UserError, run_cli

DISPLAY_NAMES = {"la": "LA", "agi": "AGI", "attexplore": "AttEXplore", "big": "BIG", "deeplift": "DeepLIFT",
                 "eg": "EG", "fast_ig": "FIG", "guided_ig": "GIG", "ig": "IG", "mfaba": "MFABA", "sg": "SG", "sm": "SM"}
PAPER_MODELS = ["inception_v3", "resnet50", "vgg16", "maxvit_t"]
PAPER_DEFAULT = (20, 20, 20)
MISSING = "-"
LA_KEYS = ["spatial_range", "max_iter", "sampling_times"]
GAMES = {"insertion": "Insertion (higher is better)", "deletion": "Deletion (lower is better)"}


# ---------------------------------------------------------------- reading


def _int_or_none(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def load_results(path) -> pd.DataFrame:
    """results.csv as a frame: model, attr_method, spatial_range, max_iter, sampling_times (ints for
    LA rows, None otherwise), insertion, deletion (floats, NaN when blank). A later row with the same
    key replaces an earlier one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; run eval.py or para_explore.sh first")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise UserError(f"{path} lacks the columns {', '.join(missing)} (expected {', '.join(CSV_COLUMNS)})")
    df = pd.DataFrame({"model": raw["model"].str.strip(), "attr_method": raw["attr_method"].str.strip()})
    is_la = (df["attr_method"] == "la").tolist()
    for column, key in zip(["spatial_range", "max-iter", "samples_number"], LA_KEYS):
        df[key] = pd.Series([_int_or_none(v) if la else None for v, la in zip(raw[column], is_la)],
                            index=df.index, dtype=object)
    for game in GAMES:
        df[game] = pd.to_numeric(raw[game], errors="coerce")
    key = ["model", "attr_method", *LA_KEYS]
    return df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def model_order(models):
    """The paper's models first (a weights suffix such as resnet50-random sorts with resnet50), then
    the others in order of appearance."""
    models = list(dict.fromkeys(models))

    def key(item):
        position, name = item
        base = name.split("-")[0]
        rank = PAPER_MODELS.index(base) if base in PAPER_MODELS else len(PAPER_MODELS)
        return (rank, position if rank == len(PAPER_MODELS) else 0, name)

    return [name for _, name in sorted(enumerate(models), key=key)]


def method_order(methods):
    """PAPER_ORDER, then unknown methods in order of appearance."""
    methods = list(dict.fromkeys(methods))
    return [m for m in PAPER_ORDER if m in methods] + [m for m in methods if m not in PAPER_ORDER]


def display_name(method):
    return DISPLAY_NAMES.get(method, method)


# ---------------------------------------------------------------- the main tables


def parse_la_choice(text):
    """'default', 'best' or 'R,T,S' -> 'default' | 'best' | (R, T, S)."""
    if text in (None, "default", "best"):
        return text or "default"
    parts = [p for p in str(text).replace("/", ",").replace(" ", ",").split(",") if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise UserError(f"--la {text!r}: use default, best or R,T,S (e.g. 20,20,20)")
    return tuple(int(p) for p in parts)


def la_settings(df, model):
    """The LA rows of one model."""
    rows = df[(df["model"] == model) & (df["attr_method"] == "la")]
    return rows.dropna(subset=LA_KEYS)


def choose_la(df, model, choice="default"):
    """(r, T, S) of the LA row shown for `model`, or None when it has none (or not the one asked)."""
    rows = la_settings(df, model)
    settings = {tuple(int(v) for v in r[LA_KEYS]): r for _, r in rows.iterrows()}
    if isinstance(choice, tuple):
        return choice if choice in settings else None
    if choice == "default" and PAPER_DEFAULT in settings:
        return PAPER_DEFAULT
    scored = [(s, r["insertion"]) for s, r in settings.items() if not pd.isna(r["insertion"])]
    if not scored:
        return next(iter(settings), None)
    return max(scored, key=lambda item: (item[1], [-v for v in item[0]]))[0]  # ties: the smaller setting


def main_tables(df, la="default", all_methods=False):
    """{"insertion": frame, "deletion": frame} (index = models, columns = method names in the paper's
    order, NaN where missing) and {model: (r, T, S) or None}, the LA setting used per model."""
    la = parse_la_choice(la) if not isinstance(la, tuple) else la
    models = model_order(df["model"])
    methods = list(PAPER_ORDER) if all_methods else method_order(df["attr_method"])
    if all_methods:
        methods += [m for m in method_order(df["attr_method"]) if m not in methods]
    chosen = {model: choose_la(df, model, la) for model in models}
    tables = {}
    for game in GAMES:
        frame = pd.DataFrame(math.nan, index=pd.Index(models, name="model"), columns=methods, dtype=float)
        for model in models:
            for method in methods:
                rows = df[(df["model"] == model) & (df["attr_method"] == method)]
                if method == "la":
                    if chosen[model] is None:
                        continue
                    rows = rows[[tuple(int(v) for v in r[LA_KEYS]) == chosen[model] for _, r in rows.iterrows()]]
                if len(rows):
                    frame.loc[model, method] = rows[game].iloc[-1]
        tables[game] = frame
    return tables, chosen


def best_mask(frame, game, digits):
    """True where a cell holds its row's best value, as displayed (rounded): max insertion, min deletion.
    Every cell equal to the best is marked."""
    rounded = frame.round(digits)
    best = rounded.max(axis=1) if game == "insertion" else rounded.min(axis=1)
    return rounded.eq(best, axis=0) & rounded.notna()


def format_cells(frame, game, digits, bold):
    """Strings for every cell: the value with `digits` places, bold(text) for the best, '-' if missing."""
    mask = best_mask(frame, game, digits)
    cells = pd.DataFrame(MISSING, index=frame.index, columns=frame.columns, dtype=object)
    for model in frame.index:
        for method in frame.columns:
            value = frame.loc[model, method]
            if pd.isna(value):
                continue
            text = f"{value:.{digits}f}"
            cells.loc[model, method] = bold(text) if mask.loc[model, method] else text
    return cells


def markdown(header, rows):
    """A Markdown table from a header list and rows of strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def la_note(chosen):
    parts = [f"{model}: r={s[0]}, T={s[1]}, S={s[2]}" for model, s in chosen.items() if s is not None]
    return "LA setting (spatial_range r, max_iter T, sampling_times S): " + "; ".join(parts) if parts else ""


def table_markdown(frame, game, digits=4, chosen=None):
    cells = format_cells(frame, game, digits, lambda t: f"**{t}**")
    header = ["Model"] + [display_name(m) for m in frame.columns]
    text = f"**{GAMES[game]}**\n\n" + markdown(header, [[m, *cells.loc[m]] for m in frame.index])
    note = la_note(chosen or {}) if "la" in frame.columns else ""
    return text + (f"\n\n{note}" if note else "")


def latex_escape(text):
    """Text with LaTeX's special characters escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
    return "".join(special.get(ch, ch) for ch in str(text))


def table_latex(frame, game, digits=4, chosen=None):
    """A booktabs tabular (needs \\usepackage{booktabs}) inside a table environment."""
    cells = format_cells(frame, game, digits, lambda t: rf"\textbf{{{t}}}")
    header = ["Model"] + [latex_escape(display_name(m)) for m in frame.columns]
    arrow = r"$\uparrow$" if game == "insertion" else r"$\downarrow$"
    lines = [r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
             rf"\caption{{{GAMES[game].split(' (')[0]} AUC ({arrow}); best per model in bold.}}",
             rf"\label{{tab:{game}}}", r"\begin{tabular}{l" + "c" * len(frame.columns) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join([latex_escape(m), *cells.loc[m]]) + r" \\" for m in frame.index]
    lines += [r"\bottomrule", r"\end{tabular}"]
    note = la_note(chosen or {}) if "la" in frame.columns else ""
    if note:
        lines.append(rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the LA grid


def la_grid(df, model, game="insertion"):
    """AUC of one model's LA runs: index (spatial_range, max_iter), columns sampling_times; NaN missing."""
    rows = la_settings(df, model)
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(**{k: rows[k].astype(int) for k in LA_KEYS})
    grid = rows.pivot_table(index=["spatial_range", "max_iter"], columns="sampling_times", values=game, aggfunc="last")
    full = pd.MultiIndex.from_product([sorted(rows["spatial_range"].unique()), sorted(rows["max_iter"].unique())],
                                      names=["spatial_range", "max_iter"])
    grid = grid.reindex(index=full, columns=sorted(rows["sampling_times"].unique()))
    grid.columns.name = "sampling_times"
    return grid.astype(float)


def la_grid_markdown(df, digits=4):
    parts = []
    for model in model_order(df["model"]):
        for game in GAMES:
            grid = la_grid(df, model, game)
            if grid.empty:
                continue
            rounded = grid.round(digits)
            best = rounded.max().max() if game == "insertion" else rounded.min().min()
            header = ["r (spatial_range)", "T (max_iter)"] + [f"S={s}" for s in grid.columns]
            rows = []
            for (r, t), values in grid.iterrows():
                row = [str(r), str(t)]
                for s, value in values.items():
                    text = MISSING if pd.isna(value) else f"{value:.{digits}f}"
                    row.append(f"**{text}**" if text != MISSING and rounded.loc[(r, t), s] == best else text)
                rows.append(row)
            parts.append(f"**LA grid, {model}: {GAMES[game]}** (best in bold)\n\n" + markdown(header, rows))
    return "\n\n".join(parts)


def la_grid_plot(df, model, path):
    """One panel per spatial_range: AUC against max_iter, a line per sampling_times; insertion on the
    top row, deletion below. Returns the path, or None when the model has no LA rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grids = {game: la_grid(df, model, game) for game in GAMES}
    if grids["insertion"].empty:
        return None
    ranges = list(grids["insertion"].index.get_level_values(0).unique())
    fig, axes = plt.subplots(2, len(ranges), figsize=(3.6 * len(ranges) + 0.6, 6.2), squeeze=False,
                             sharex=True, sharey="row")
    for row, game in enumerate(GAMES):
        grid = grids[game]
        for col, r in enumerate(ranges):
            ax = axes[row][col]
            part = grid.loc[r]
            for s in grid.columns:
                ax.plot(part.index, part[s], marker="o", label=f"S={s}")
            ax.set_title(f"{game}, r={r}", fontsize=10)
            ax.set_xticks(list(part.index))
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("max_iter T")
            if col == 0:
                ax.set_ylabel(f"{game} AUC ({'higher' if game == 'insertion' else 'lower'} is better)")
    axes[0][-1].legend(title="sampling_times", fontsize=8, title_fontsize=8)
    fig.suptitle(f"LA grid, {model}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- all outputs


def write_tables(csv_path="results.csv", out="tables", la="default", digits=4, all_methods=False, plots=True):
    """Write every table (and the LA grid figures) under `out`; returns (markdown text, written paths)."""
    df = load_results(csv_path)
    if df.empty:
        raise UserError(f"{csv_path} holds no rows")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables, chosen = main_tables(df, la=la, all_methods=all_methods)
    written = []
    sections = []
    for game, frame in tables.items():
        md = table_markdown(frame, game, digits, chosen)
        sections.append(md)
        for suffix, text in [("md", md), ("tex", table_latex(frame, game, digits, chosen))]:
            path = out / f"{game}.{suffix}"
            path.write_text(text + "\n")
            written.append(path)
    grid_md = la_grid_markdown(df, digits)
    if grid_md:
        sections.append(grid_md)
        (out / "la_grid.md").write_text(grid_md + "\n")
        written.append(out / "la_grid.md")
        if plots:
            for model in model_order(df["model"]):
                png = la_grid_plot(df, model, out / f"la_grid_{model}.png")
                if png is not None:
                    written.append(png)
    text = "\n\n".join(sections)
    (out / "tables.md").write_text(text + "\n")
    written.insert(0, out / "tables.md")
    return text, written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", "--csv_path", dest="csv", default="results.csv", help="the results table")
    parser.add_argument("--out", default="tables", help="output folder")
    parser.add_argument("--la", default="default",
                        help="LA setting in the main tables: default (20,20,20 if present, else best), best, or R,T,S")
    parser.add_argument("--digits", type=int, default=4, help="decimal places")
    parser.add_argument("--all_methods", "--all-methods", action="store_true",
                        help="a column for each of the twelve methods even when it has no row")
    parser.add_argument("--no_plot", "--no-plot", action="store_true", help="skip the LA grid figures")
    args = parser.parse_args(argv)
    if args.digits < 0:
        raise UserError("--digits must be 0 or more")
    text, written = write_tables(args.csv, args.out, parse_la_choice(args.la), args.digits, args.all_methods,
                                 not args.no_plot)
    print(text)
    print("\nwrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    run_cli(main)
