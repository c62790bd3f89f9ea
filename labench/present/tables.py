"""results.csv as the paper's tables, and the LA parameter grid (the logic of tables.py), built
as labench.present.render tables and written in Markdown and LaTeX."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from saliency import PAPER_ORDER, SaliencyError, get_method
from saliency.metric import GAMES, INSERTION

from ..errors import UserError
from ..nets.models import PAPER_MODELS
from ..spec.identity import LEAD, MISSING, OutputId, choose_setting, method_order
from ..store.files import read_results
from .figures import la_grid_figure, save_figure
from .render import Number, Table, latex, markdown, save_text

GRID_METHOD = LEAD  # the method whose parameter grid is tabulated (its file parameters)
LA_KEYS = list(get_method(GRID_METHOD).file_params)


def heading(game) -> str:
    """'Insertion (higher is better)'."""
    return f"{game.title} ({game.better} is better)"


# ---------------------------------------------------------------- reading


def load_results(path) -> pd.DataFrame:
    """results.csv as a frame: model (the model tag), attr_method, spatial_range, max_iter,
    sampling_times (ints for LA rows, None otherwise), insertion, deletion (floats, NaN when blank),
    output (the row's labench.spec.identity.OutputId: tables read its fields, never split the tag).
    A later row with the same key replaces an earlier one."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist; run eval.py or para_explore.sh first")
    read_results(path)  # a foreign or damaged file: one line that says so
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    records, read = [], []
    for number, row in enumerate(raw.to_dict("records")):
        try:
            out = OutputId.from_csv_row(row)
        except (UserError, SaliencyError, KeyError):
            continue  # a row this version cannot read
        read.append(number)
        setting = out.setting
        records.append({"model": out.model_tag, "attr_method": out.method,
                        **{k: setting.get(k) for k in LA_KEYS}, "output": out})
    df = pd.DataFrame(records, columns=["model", "attr_method", *LA_KEYS, "output"])
    for key in LA_KEYS:
        df[key] = pd.Series([None if v is None or pd.isna(v) else int(v) for v in df[key]], index=df.index, dtype=object)
    kept = raw.iloc[read].reset_index(drop=True)
    for game in GAMES:
        df[game.name] = pd.to_numeric(kept[game.name], errors="coerce").values
    key = ["model", "attr_method", *LA_KEYS]
    return df.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def _known(method):
    try:
        get_method(method)
    except SaliencyError:
        return False
    return True


def model_order(outputs):
    """The model tags of `outputs` (OutputIds) in table order: the paper's models first, then the
    others in order of appearance; the tags of one model (resnet50, resnet50-published,
    resnet50-random, ...) side by side, the plain one first."""
    base = {}
    for out in outputs:
        base.setdefault(out.model_tag, out.model)
    bases = list(dict.fromkeys(base.values()))

    def key(tag):
        rank = PAPER_MODELS.index(base[tag]) if base[tag] in PAPER_MODELS else len(PAPER_MODELS)
        return (rank, bases.index(base[tag]) if rank == len(PAPER_MODELS) else 0, tag)

    return sorted(base, key=key)


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
    default: labench.spec.identity.choose_setting, the rule plot.py uses too; best: the best insertion."""
    rows = la_settings(df, model)
    settings = {tuple(int(v) for v in r[LA_KEYS]): r for _, r in rows.iterrows()}
    if isinstance(choice, tuple):
        return choice if choice in settings else None
    if choice == "default":
        return choose_setting(GRID_METHOD, settings)
    scored = [(s, r[INSERTION.name]) for s, r in settings.items() if not pd.isna(r[INSERTION.name])]
    if not scored:
        return choose_setting(GRID_METHOD, settings)
    return max(scored, key=lambda item: (item[1], [-v for v in item[0]]))[0]  # ties: the smaller setting


def main_tables(df, la="default", all_methods=False):
    """{Game: frame} (index = model tags, columns = method names in the paper's order, NaN where
    missing) and {model tag: (r, T, S) or None}, the LA setting used per model."""
    la = parse_la_choice(la) if not isinstance(la, tuple) else la
    models = model_order(df["output"])
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
                    frame.loc[model, method] = rows[game.name].iloc[-1]
        tables[game] = frame
    return tables, chosen


def best_mask(frame, game, digits):
    """True where a cell holds its row's best value, as displayed (rounded): max insertion, min deletion.
    Every cell equal to the best is marked."""
    rounded = frame.round(digits)
    best = rounded.max(axis=1) if game.higher_is_better else rounded.min(axis=1)
    return rounded.eq(best, axis=0) & rounded.notna()


def la_note(chosen):
    parts = [f"{model}: r={s[0]}, T={s[1]}, S={s[2]}" for model, s in chosen.items() if s is not None]
    return "LA setting (spatial_range r, max_iter T, sampling_times S): " + "; ".join(parts) if parts else ""


def main_table(frame, game, digits=4, chosen=None) -> Table:
    """One game's main table: the value of every cell with `digits` places, the best of each row in
    bold, '-' where missing; the LA setting shown named under it."""
    mask = best_mask(frame, game, digits)

    def cell(model, method):
        value = frame.loc[model, method]
        return MISSING if pd.isna(value) else Number(value, digits, bool(mask.loc[model, method]))

    rows = [[model, *(cell(model, method) for method in frame.columns)] for model in frame.index]
    arrow = r"$\uparrow$" if game.higher_is_better else r"$\downarrow$"
    return Table(["Model"] + [display_name(m) for m in frame.columns], rows, title=f"**{heading(game)}**",
                 caption=f"{game.title} AUC ({arrow}); best per model in bold.", label=f"tab:{game.name}",
                 note=la_note(chosen or {}) if GRID_METHOD in frame.columns else "")


# ---------------------------------------------------------------- the LA grid


def la_grid(df, model, game=INSERTION):
    """AUC of one model's LA runs: index (spatial_range, max_iter), columns sampling_times; NaN missing."""
    rows = la_settings(df, model)
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(**{k: rows[k].astype(int) for k in LA_KEYS})
    grid = rows.pivot_table(index=["spatial_range", "max_iter"], columns="sampling_times", values=game.name,
                            aggfunc="last")
    full = pd.MultiIndex.from_product([sorted(rows["spatial_range"].unique()), sorted(rows["max_iter"].unique())],
                                      names=["spatial_range", "max_iter"])
    grid = grid.reindex(index=full, columns=sorted(rows["sampling_times"].unique()))
    grid.columns.name = "sampling_times"
    return grid.astype(float)


def la_grid_tables(df, digits=4) -> list[Table]:
    """Per model with LA rows and per game: AUC against (spatial_range, max_iter) rows and
    sampling_times columns, the best in bold."""
    tables = []
    for model in model_order(df["output"]):
        for game in GAMES:
            grid = la_grid(df, model, game)
            if grid.empty:
                continue
            rounded = grid.round(digits)
            best = rounded.max().max() if game.higher_is_better else rounded.min().min()
            rows = [[str(r), str(t), *(MISSING if pd.isna(value) else Number(value, digits, bool(rounded.loc[(r, t), s] == best))
                                       for s, value in values.items())] for (r, t), values in grid.iterrows()]
            tables.append(Table(["r (spatial_range)", "T (max_iter)"] + [f"S={s}" for s in grid.columns], rows,
                                title=f"**LA grid, {model}: {heading(game)}** (best in bold)"))
    return tables


def la_grid_markdown(df, digits=4):
    return "\n\n".join(markdown(table) for table in la_grid_tables(df, digits))


def la_grid_plot(df, model, path):
    """The LA grid figure of one model (labench.present.figures.la_grid_figure) saved to `path`; returns the
    path, or None when the model has no LA rows."""
    grids = {game: la_grid(df, model, game) for game in GAMES}
    if grids[INSERTION].empty:
        return None
    return save_figure(la_grid_figure(grids, model), path, dpi=120)


# ---------------------------------------------------------------- all outputs


def of_models(df: pd.DataFrame, models=None) -> pd.DataFrame:
    """The rows of `models` (all rows when None): a report of some models in an --out others share."""
    return df if models is None else df[[out.model in models for out in df["output"]]].reset_index(drop=True)


def write_tables(csv_path="results.csv", out="tables", la="default", digits=4, all_methods=False, plots=True,
                 models=None):
    """Write every table (and the LA grid figures) under `out`, of `models` only where given; returns
    (markdown text, written paths)."""
    df = of_models(load_results(csv_path), models)
    if df.empty:
        raise UserError(f"{csv_path} holds no rows" + (f" of {', '.join(models)}" if models else "")
                        + "; run eval.py (or report.py without --tables_only) for them first")
    out = Path(out)
    tables, chosen = main_tables(df, la=la, all_methods=all_methods)
    written = []
    sections = []
    for game, frame in tables.items():
        table = main_table(frame, game, digits, chosen)
        sections.append(markdown(table))
        written += [save_text(out / f"{game.name}.md", sections[-1]), save_text(out / f"{game.name}.tex", latex(table))]
    grid_md = la_grid_markdown(df, digits)
    if grid_md:
        sections.append(grid_md)
        written.append(save_text(out / "la_grid.md", grid_md))
        if plots:
            for model in model_order(df["output"]):
                png = la_grid_plot(df, model, out / f"la_grid_{model}.png")
                if png is not None:
                    written.append(png)
    text = "\n\n".join(sections)
    written.insert(0, save_text(out / "tables.md", text))
    return text, written
