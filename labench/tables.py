"""results.csv as the paper's tables, and the LA parameter grid (the logic of tables.py)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from saliency import PAPER_ORDER, SaliencyError, get_method

from .errors import UserError
from .files import read_results
from .identity import OutputId, choose_setting, method_order, parse_model_tag
from .models import PAPER_MODELS

MISSING = "-"
GRID_METHOD = "la"  # the method whose parameter grid is tabulated (its file parameters)
LA_KEYS = list(get_method(GRID_METHOD).file_params)
GAMES = {"insertion": "Insertion (higher is better)", "deletion": "Deletion (lower is better)"}


# ---------------------------------------------------------------- reading


def load_results(path) -> pd.DataFrame:
    """results.csv as a frame: model (the model tag), attr_method, spatial_range, max_iter,
    sampling_times (ints for LA rows, None otherwise), insertion, deletion (floats, NaN when blank).
    Rows are read through labench.identity, the rule that named them. A later row with the same
    key replaces an earlier one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; run eval.py or para_explore.sh first")
    read_results(path)  # a foreign or damaged file: one line that says so
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    records = []
    for row in raw.to_dict("records"):
        try:
            out = OutputId.from_csv_row(row)
        except (UserError, SaliencyError, KeyError):
            continue  # a method this version does not know
        setting = out.setting
        records.append({"model": out.model_tag, "attr_method": out.method,
                        **{k: setting.get(k) for k in LA_KEYS}})
    df = pd.DataFrame(records, columns=["model", "attr_method", *LA_KEYS])
    for key in LA_KEYS:
        df[key] = pd.Series([None if v is None or pd.isna(v) else int(v) for v in df[key]], index=df.index, dtype=object)
    kept = raw[[_known(m) for m in raw["attr_method"].str.strip()]].reset_index(drop=True)
    for game in GAMES:
        df[game] = pd.to_numeric(kept[game], errors="coerce").values
    key = ["model", "attr_method", *LA_KEYS]
    return df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def _known(method):
    try:
        get_method(method)
    except SaliencyError:
        return False
    return True


def model_order(models):
    """The paper's models first, then the others in order of appearance; the tags of one model
    (resnet50, resnet50-published, resnet50-random, ...) side by side, the plain one first."""
    models = list(dict.fromkeys(models))
    bases = list(dict.fromkeys(parse_model_tag(name)[0] for name in models))

    def key(name):
        base = parse_model_tag(name)[0]
        rank = PAPER_MODELS.index(base) if base in PAPER_MODELS else len(PAPER_MODELS)
        return (rank, bases.index(base) if rank == len(PAPER_MODELS) else 0, name)

    return sorted(models, key=key)


def display_name(method):
    return get_method(method).display if _known(method) else method


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
    rows = df[(df["model"] == model) & (df["attr_method"] == GRID_METHOD)]
    return rows.dropna(subset=LA_KEYS)


def choose_la(df, model, choice="default"):
    """(r, T, S) of the LA row shown for `model`, or None when it has none (or not the one asked).
    default: labench.identity.choose_setting, the rule plot.py uses too; best: the best insertion."""
    rows = la_settings(df, model)
    settings = {tuple(int(v) for v in r[LA_KEYS]): r for _, r in rows.iterrows()}
    if isinstance(choice, tuple):
        return choice if choice in settings else None
    if choice == "default":
        return choose_setting(GRID_METHOD, settings)
    scored = [(s, r["insertion"]) for s, r in settings.items() if not pd.isna(r["insertion"])]
    if not scored:
        return choose_setting(GRID_METHOD, settings)
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
                if method == GRID_METHOD:
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
    note = la_note(chosen or {}) if GRID_METHOD in frame.columns else ""
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
    note = la_note(chosen or {}) if GRID_METHOD in frame.columns else ""
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
    return save_png(fig, path)


def save_png(fig, path, dpi=120):
    """Lay out, save (creating the folder) and close a figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
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


