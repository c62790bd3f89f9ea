"""labench.present.render: one table written as Markdown, LaTeX and CSV, against hand-written answers."""
import math

from labench.present.render import Interval, Number, Table, csv_text, latex, markdown, save_text


def table():
    return Table(["Model", "n", "A_1", "B"],
                 [["m_x", "3", Number(0.25, 2, bold=True), Interval(0.5, 0.4, 0.7, 2, "better")],
                  ["y", "1", "-", Interval(0.125, math.nan, math.nan, 3, "n.s.")]],
                 title="**Title**", caption="Cap", label="tab:t", note="r=20 & more", markdown_only=(1,))


def test_markdown_shows_every_column_with_title_and_note():
    assert markdown(table()) == ("**Title**\n\n"
                                 "| Model | n | A_1 | B |\n"
                                 "| --- | --- | --- | --- |\n"
                                 "| m_x | 3 | **0.25** | 0.50 [0.40, 0.70]▲ |\n"
                                 "| y | 1 | - | 0.125 |\n\n"
                                 "r=20 & more")


def test_latex_escapes_text_and_leaves_out_markdown_only_columns():
    assert latex(table()).splitlines() == [
        r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\caption{Cap}", r"\label{tab:t}",
        r"\begin{tabular}{lcc}", r"\toprule", r"Model & A\_1 & B \\", r"\midrule",
        r"m\_x & \textbf{0.25} & $0.50 \pm 0.15$$^\blacktriangle$ \\", r"y & - & $0.125$ \\",
        r"\bottomrule", r"\end{tabular}", r"\par\smallskip{\footnotesize r=20 \& more}", r"\end{table}"]


def test_csv_has_six_significant_digits_and_empty_missing_values(tmp_path):
    long = Table(["a", "b", "c", "d"], [["x,y", 12, 0.123456789, math.nan], ["z", None, Number(2.0, 1), 1e-9]])
    assert csv_text(long) == 'a,b,c,d\n"x,y",12,0.123457,\nz,,2,1e-09'
    path = save_text(tmp_path / "sub" / "t.csv", csv_text(long))
    assert path.read_text() == csv_text(long) + "\n"
