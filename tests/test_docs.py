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


def test_nothing_a_user_reads_names_a_file_outside_the_repository():
    outside = re.compile(r"\.\./shared|SPEC\.md|\bSPEC\b")
    readable = [path for path in tracked() if path.suffix in {".md", ".py", ".sh", ".ipynb", ".txt", ".yml", ""}
                and path.name != "test_docs.py" and path.is_file()]
    assert len(readable) > 50
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in readable
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if outside.search(line)]
    assert hits == []
