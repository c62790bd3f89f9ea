"""What a user reads stands on its own in a fresh clone: every project file README and docs/ name
exists, and nothing names a file outside the repository (the images' only source is the published
repository, named by its public files)."""
import re
import subprocess

from conftest import ROOT

# what generate_pt.py writes into data/ (and the published repository's own data/label_batch.pt)
CACHE_FILES = {"data/img_batch.pt", "data/label_batch.pt", "data/provenance.json"}
PROJECT_PATH = re.compile(r"\b(?:docs|bench|tests|labench|saliency|data|\.ci)/[\w./-]+\.(?:md|py|json|pt|sh|png|ipynb|txt|yml)")


def tracked(*patterns):
    listed = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in listed.stdout.splitlines()]


def test_every_project_file_the_docs_name_exists():
    docs = tracked("README.md", "docs/*.md")
    assert len(docs) >= 6
    named = {path for doc in docs for path in PROJECT_PATH.findall(doc.read_text())}
    assert "docs/PROTOCOL.md" in named and "data/evaluation_set.json" in named
    missing = sorted(path for path in named - CACHE_FILES if not (ROOT / path).exists())
    assert missing == []


def test_readme_is_a_front_door_and_the_reference_lives_in_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    linked = set(re.findall(r"docs/[A-Z]+\.md", readme))
    assert {f"docs/{p.name}" for p in tracked("docs/*.md")} <= linked  # every document is reachable from README
    assert "make test" in readme and "make demo" in readme


def test_citation_file_matches_the_package_and_the_paper():
    citation = (ROOT / "CITATION.cff").read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.search(rf'^version: "{re.escape(version)}"$', citation, re.M)
    doi = re.search(r'doi: "([^"]+)"', citation).group(1)
    assert doi == "10.1145/3664647.3681385" and doi in (ROOT / "README.md").read_text()
    assert "cff-version: 1.2.0" in citation and "Enhancing Model Interpretability" in citation


def test_nothing_a_user_reads_names_a_file_outside_the_repository():
    outside = re.compile(r"\.\./shared|SPEC\.md|\bSPEC\b")
    readable = [path for path in tracked() if path.suffix in {".md", ".py", ".sh", ".ipynb", ".txt", ".yml", ""}
                and path.name != "test_docs.py" and path.is_file()]
    assert len(readable) > 50
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in readable
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if outside.search(line)]
    assert hits == []


def results_parts():
    """(docs/RESULTS.md's prose, the block report.py --results wrote into it)."""
    from labench.flows.report import END, marked_block

    path = ROOT / "docs" / "RESULTS.md"
    text = path.read_text()
    start, end = marked_block(path, text)  # the markers report.py --results writes between, once each
    return text[:start] + text[end + len(END):], text[start:end]


def test_results_tables_agree_with_themselves():
    """docs/RESULTS.md read as a reviewer would (tests/printed.py): in every 'LA minus each method'
    table each Holm p follows from that table's raw p-values, and no interval contradicts its verdict;
    the seed-spread, correctly-classified and across-model tables are there."""
    from printed import comparison_tables, problems

    _, block = results_parts()
    tables = comparison_tables(block)
    assert len(tables) >= 6  # two games per model under the paper's metric, and per metric variant
    assert all(len(table) == 11 for table in tables)
    assert [problem for table in tables for problem in problems(table)] == []
    for section in ("### Seed spread", "### The correctly classified images", "### Across models"):
        assert section in block


def test_results_prose_quotes_only_printed_numbers():
    """Every decimal number in RESULTS.md's prose is printed, as written, in its tables (the block
    report.py wrote) or in docs/USAGE.md (the models' accuracy); a number without a sign may quote a signed
    one's size ('by 0.0770' for '+0.0770')."""
    number = re.compile(r"(?<![\w.])[+-]?\d+\.\d+%?(?![\w]|\.\d)")
    prose, block = results_parts()
    printed = set(number.findall(block)) | set(number.findall((ROOT / "docs" / "USAGE.md").read_text()))
    sizes = {n.lstrip("+-") for n in printed}
    quoted = set(number.findall(prose))
    assert len(quoted) > 10
    assert sorted(n for n in quoted if n not in printed and (n[0] in "+-" or n not in sizes)) == []


def test_readme_python_runs_as_written_on_small_images(capsys):
    """README's Python block, run with its image size and LA's iterations made small (seeded
    random weights: no download)."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
              if not b.startswith("# my_method.py")]  # the method file: tests/test_own_method.py runs it
    assert len(blocks) == 1
    code = blocks[0].replace("224, 224", "32, 32").replace("max_iter=10, sampling_times=10", "max_iter=2, sampling_times=2")
    assert code != blocks[0]
    import torch

    from labench.nets.models import seeded_init

    with seeded_init(0):
        namespace = {}
        exec(compile(code, "README.md", "exec"), namespace)
    scores = namespace["scores"]
    assert scores.insertion.shape == (2,) and ((scores.insertion >= 0) & (scores.insertion <= 1)).all()
    assert namespace["maps"].shape == (2, 3, 32, 32) and torch.isfinite(namespace["maps"]).all()
    assert "tensor(" in capsys.readouterr().out


def test_readme_results_quote_numbers_results_md_prints():
    readme = (ROOT / "README.md").read_text()
    quoted = readme[readme.index("**Results so far**"):readme.index("## Quick start")]
    number = re.compile(r"[+-]?\d+\.\d+%?")
    results = (ROOT / "docs" / "RESULTS.md").read_text()
    found = number.findall(quoted)
    assert len(found) >= 6 and [n for n in found if n not in results] == []
