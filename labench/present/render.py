"""One renderer for every table the project writes: a `Table` (a title, a header and rows of cells)
as Markdown, as a LaTeX booktabs table, or as CSV.

A cell is text (escaped in LaTeX), a `Number` (bold where it is its row's best) or an `Interval`
(a mean with its 95% interval and LA's significance mark); each knows how it prints in each
format, so a table is built once and written in all three.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from ..store.files import atomic_path

MARKS = {"better": ("▲", r"$^\blacktriangle$"), "worse": ("▼", r"$^\blacktriangledown$")}  # Markdown, LaTeX


@dataclass(frozen=True)
class Number:
    value: float
    digits: int
    bold: bool = False

    def markdown(self) -> str:
        text = f"{self.value:.{self.digits}f}"
        return f"**{text}**" if self.bold else text

    def latex(self) -> str:
        text = f"{self.value:.{self.digits}f}"
        return rf"\textbf{{{text}}}" if self.bold else text

    def csv(self):
        return self.value


@dataclass(frozen=True)
class Interval:
    """mean [low, high] in Markdown; `mean \\pm h` in LaTeX, h half the interval's width; a mark
    (MARKS) where LA is significantly better or worse than the cell's method."""
    mean: float
    low: float
    high: float
    digits: int
    mark: str = ""  # a verdict: "better", "worse" or anything else for none

    def markdown(self) -> str:
        d = self.digits
        text = f"{self.mean:.{d}f}" if math.isnan(self.low) else f"{self.mean:.{d}f} [{self.low:.{d}f}, {self.high:.{d}f}]"
        return text + MARKS.get(self.mark, ("", ""))[0]

    def latex(self) -> str:
        d, half = self.digits, (self.high - self.low) / 2
        text = f"{self.mean:.{d}f}" if math.isnan(half) else f"{self.mean:.{d}f} \\pm {half:.{d}f}"
        return f"${text}$" + MARKS.get(self.mark, ("", ""))[1]

    def csv(self):
        return self.mean


@dataclass(frozen=True)
class Table:
    header: list
    rows: list  # lists of cells: str, Number, Interval, or for CSV any number (NaN and None: empty)
    title: str = ""  # Markdown: the paragraph above the table
    caption: str = ""  # LaTeX: the caption (LaTeX text)
    label: str = ""  # LaTeX: the label
    note: str = ""  # a paragraph under the table (plain text, escaped in LaTeX)
    packages: tuple = ("booktabs",)  # LaTeX packages the table needs, named in its first line
    markdown_only: tuple = ()  # indices of the columns LaTeX leaves out


def _text(cell, fmt):
    return getattr(cell, fmt)() if hasattr(cell, fmt) else latex_escape(cell) if fmt == "latex" else str(cell)


def markdown(table: Table) -> str:
    """The title, the table, and the note, separated by blank lines."""
    lines = ["| " + " | ".join(_text(c, "markdown") for c in row) + " |" for row in [table.header, *table.rows]]
    lines.insert(1, "|" + "|".join(" --- " for _ in table.header) + "|")
    return "\n\n".join(part for part in (table.title, "\n".join(lines), table.note) if part)


def latex_escape(text) -> str:
    """Text with LaTeX's special characters escaped."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
    return "".join(special.get(ch, ch) for ch in str(text))


def latex(table: Table) -> str:
    """A booktabs tabular inside a table environment: caption, label, the note below the tabular."""
    keep = [i for i in range(len(table.header)) if i not in table.markdown_only]

    def line(row):
        return " & ".join(_text(row[i], "latex") for i in keep) + r" \\"

    lines = ["% needs " + " and ".join(rf"\usepackage{{{p}}}" for p in table.packages), r"\begin{table}[t]",
             r"\centering", rf"\caption{{{table.caption}}}", rf"\label{{{table.label}}}",
             r"\begin{tabular}{l" + "c" * (len(keep) - 1) + "}", r"\toprule", line(table.header), r"\midrule",
             *(line(row) for row in table.rows), r"\bottomrule", r"\end{tabular}"]
    if table.note:
        lines.append(rf"\par\smallskip{{\footnotesize {latex_escape(table.note)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def _csv_value(cell):
    value = cell.csv() if hasattr(cell, "csv") else cell
    if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, (float, np.floating)) else str(value)


def csv_text(table: Table) -> str:
    """The header and the rows as CSV; numbers with 6 significant digits, NaN and None empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([table.header, *([_csv_value(c) for c in row] for row in table.rows)])
    return buffer.getvalue().removesuffix("\n")


def save_text(path, text):
    """Write `text` and a final newline to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")
    return path
