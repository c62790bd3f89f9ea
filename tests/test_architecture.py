"""The import graph drawn from the code: layers read top down, no arrow runs back up, no script
imports a script, the library needs torch and captum only, tests and bench never edit sys.path."""
import ast
import sys

import pytest

from conftest import ROOT

SCRIPTS = ["generate_pt", "generate_attributions", "eval", "plot", "tables", "report", "sanity", "utils"]
# labench's packages along the data flow, bottom up: a module may import only from a package of a
# strictly lower rank, or from its own package
PACKAGES = ["saliency", "resnet_mod", "vgg16_mod", "labench.errors",
            "labench.store",    # atomic files, locks, chunk stores
            "labench.nets",     # model names -> networks, and what the benchmark does to them
            "labench.spec",     # what an output is: its identity, names and run value
            "labench.compute",  # data, set-up, the attribution and scoring jobs
            "labench.stats",    # numbers only
            "labench.present",  # tables and figures
            "labench.flows",    # what the scripts run: arguments, grid, report, sanity checks
            "scripts"]          # the scripts at the top level, and bench/
LAYERS = {**{name: rank for rank, name in enumerate(PACKAGES)}, "labench": PACKAGES.index("labench.errors"),
          **{f"script:{s}": PACKAGES.index("scripts") for s in SCRIPTS}, "bench": PACKAGES.index("scripts")}
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


def package_of(name):
    """The entry of LAYERS that holds the module `name`."""
    while name not in LAYERS and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def layer_of(name):
    return LAYERS.get(package_of(name))


def project_files():
    files = [p for p in ROOT.glob("*.py")] + list((ROOT / "labench").rglob("*.py")) \
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


def test_every_labench_package_is_ranked_and_says_what_it_does():
    folders = sorted(p.parent for p in (ROOT / "labench").glob("*/__init__.py"))
    assert sorted(f"labench.{f.name}" for f in folders) == sorted(p for p in PACKAGES if p.startswith("labench.")
                                                               and p != "labench.errors")
    docstrings = [ast.get_docstring(ast.parse((f / "__init__.py").read_text())) for f in folders]
    assert all(d and "\n" not in d for d in docstrings), docstrings
    assert sorted(p.stem for p in (ROOT / "labench").glob("*.py")) == ["__init__", "errors"]


def test_no_import_runs_back_up_and_no_script_imports_a_script():
    violations = []
    for path in project_files():
        source = module_name(path)
        for name in imports_of(path):
            target = project_target(name)
            if target is None or package_of(target) == package_of(source) or target.startswith(source + "."):
                continue  # outside the project, or a package importing its own modules
            if layer_of(target) >= layer_of(source):
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
