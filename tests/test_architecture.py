"""The import graph drawn from the code: layers read top down, no arrow runs back up, no script
imports a script, the library needs torch and captum only, tests and bench never edit sys.path."""
import ast
import sys

import pytest

from conftest import ROOT

SCRIPTS = ["generate_pt", "generate_attributions", "eval", "plot", "tables", "report", "sanity", "utils"]
# rank of every project module: a module may import only modules of a strictly lower rank
LAYERS = {
    **{f"script:{s}": 11 for s in SCRIPTS},
    "bench": 11,
    "labench.report": 10,
    "labench.grid": 9, "labench.stems": 9, "labench.significance": 9, "labench.sanity": 9,
    "labench.attributions": 8, "labench.scoring": 8, "labench.tables": 8, "labench.analysis": 8, "labench.similarity": 8,
    "labench.cli": 7, "labench.figures": 7, "labench.stats": 7,
    "labench.run": 6,
    "labench.identity": 5, "labench.jobs": 5, "labench.memory": 5, "labench.data": 5, "labench.fast": 5,
    "labench.render": 5, "labench.runtime": 5,
    "labench.models": 4, "labench.files": 4, "labench.progress": 4, "labench.randomisation": 4,
    "labench.errors": 3,
    "labench": 3,
    "vgg16_mod": 2, "resnet_mod": 1,
    "saliency": 0,
}
LIBRARY_ALLOWED = set(sys.stdlib_module_names) | {"torch", "captum", "numpy"}


def module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts
    if parts[0] == "bench":
        return "bench"
    if len(parts) == 1:
        return f"script:{parts[0]}" if parts[0] in SCRIPTS else parts[0]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(name):
    while name not in LAYERS and "." in name:
        name = name.rsplit(".", 1)[0]
    return LAYERS.get(name)


def project_files():
    files = [p for p in ROOT.glob("*.py")] + list((ROOT / "labench").glob("*.py")) \
        + list((ROOT / "saliency").rglob("*.py")) + list((ROOT / "bench").glob("*.py"))
    return sorted(files)


def imports_of(path):
    """Absolute names of everything `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = module_name(path).split(":")[-1]
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0] if "." in package else ""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module)
    return names


def project_target(name):
    top = name.split(".")[0]
    if top in SCRIPTS:
        return f"script:{top}"
    if top in ("labench", "saliency", "resnet_mod", "vgg16_mod"):
        return name
    return None


def test_every_project_module_has_a_layer():
    missing = [module_name(p) for p in project_files() if layer_of(module_name(p)) is None]
    assert missing == []


def test_no_import_runs_back_up_and_no_script_imports_a_script():
    violations = []
    for path in project_files():
        source = module_name(path)
        for name in imports_of(path):
            target = project_target(name)
            if target is None or target == source or target.startswith(source + "."):
                continue  # outside the project, or a package importing its own modules
            if layer_of(target) >= layer_of(source) and not (source.startswith("saliency") and target.startswith("saliency")):
                violations.append(f"{source} -> {target}")
    assert violations == []


def test_the_library_needs_torch_and_captum_only():
    outside = {(module_name(p), n) for p in (ROOT / "saliency").rglob("*.py") for n in imports_of(p)
               if n.split(".")[0] not in LIBRARY_ALLOWED and not n.startswith("saliency")}
    assert outside == set()


@pytest.mark.parametrize("folder", ["tests", "bench"])
def test_no_sys_path_edits(folder):
    edits = [p.name for p in (ROOT / folder).glob("*.py") if "sys.path" in p.read_text()]
    assert edits == [] or edits == ["test_architecture.py"]


def test_library_errors_name_no_script():
    texts = {p.name: p.read_text() for p in (ROOT / "saliency").rglob("*.py")}
    named = [name for name, text in texts.items() for s in SCRIPTS[:-1] if f"{s}.py" in text]
    assert named == []
