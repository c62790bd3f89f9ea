"""A reader's check of printed LA comparison tables (a report's statistics.md, docs/RESULTS.md):
each table's Holm p-values recomputed from its own printed raw p-values, and each interval read
against its verdict. Written from the printed Markdown alone, independent of labench."""
from __future__ import annotations

HEADER = "| method | images | LA - method [CI] |"


def cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def comparison_tables(markdown):
    """[[{column: text}]]: the rows of every 'LA minus each method' table, one list per table."""
    tables, columns = [], None
    for line in markdown.splitlines():
        if line.startswith(HEADER):
            columns = cells(line)
            tables.append([])
        elif columns and line.startswith("| ---"):
            continue
        elif columns and line.startswith("|"):
            tables[-1].append(dict(zip(columns, cells(line))))
        else:
            columns = None
    return tables


def holm(p_values):
    """Holm's step-down adjustment, the textbook loop."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def excludes_zero(interval_cell):
    """'+0.0123 [+0.0051, +0.0190]' -> True; the printed signs decide a bound that rounds to 0."""
    low, high = interval_cell.split("[", 1)[1].rstrip("]").split(", ")
    return low.startswith("+") or (high.startswith("-") and high != "-0")


def problems(table, rel=0.05, level=0.05):
    """What a reader would object to in one table: a Holm p that does not follow from the printed raw
    p-values over the table's rows (to the printing's rounding), or a verdict that its interval or
    its Holm p contradicts."""
    found = []
    raw = [float(row["p (sign-flip)"]) for row in table]
    for row, expected in zip(table, holm(raw)):
        printed = float(row["p (Holm)"])
        if abs(printed - expected) > rel * max(expected, 1e-12):
            found.append(f"{row['method']}: Holm p {printed} but {expected:.3g} from the raw p-values")
        significant = row["LA is"] != "n.s."
        if excludes_zero(row["LA - method [CI]"]) != significant:
            found.append(f"{row['method']}: interval {row['LA - method [CI]']} beside '{row['LA is']}'")
        if (printed < level) != significant:
            found.append(f"{row['method']}: Holm p {printed} beside '{row['LA is']}'")
    return found
