"""tutorial.ipynb: committed with its outputs, small, and (slow) it runs offline top to bottom and
prints what is committed."""
import nbformat
import pytest

from conftest import ROOT

TUTORIAL = ROOT / "tutorial.ipynb"


def printed(nb) -> list[str]:
    return [out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
            if out.get("output_type") == "stream" and out.get("name") == "stdout"]


def test_tutorial_is_committed_executed_and_small():
    nb = nbformat.read(TUTORIAL, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # run once, top to bottom
    assert all(c.outputs for c in code)
    assert not any(out.get("output_type") == "error" or out.get("name") == "stderr" for c in code for out in c.outputs)
    figures = [out for c in code for out in c.outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 2  # the heatmaps and the curves
    assert TUTORIAL.stat().st_size < 2_000_000
    assert "the model predicts: espresso" in printed(nb)[0]


@pytest.mark.slow
def test_tutorial_runs_offline_and_prints_what_is_committed(tmp_path):
    import nbclient

    committed = nbformat.read(TUTORIAL, as_version=4)
    nb = nbformat.read(TUTORIAL, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    scores = [line for text in printed(nb) for line in text.splitlines() if "insertion" in line]
    assert scores == [line for text in printed(committed) for line in text.splitlines() if "insertion" in line]
    assert len(scores) == 3
