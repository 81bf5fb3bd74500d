"""The apps' place in the house: only `seqlab.cli` names them, they never import it, and interop asks, not pokes.

Checked with the standard library's `ast` on the source files, so nothing is imported to look.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SEQLAB = Path(__file__).resolve().parents[1] / "seqlab"
APPS = SEQLAB / "apps"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def test_only_the_command_line_names_the_apps():
    offenders = []
    for path in SEQLAB.rglob("*.py"):
        if APPS in path.parents or path == SEQLAB / "cli.py":
            continue
        if any(module == "seqlab.apps" or module.startswith("seqlab.apps.") for module in imported_modules(path)):
            offenders.append(str(path.relative_to(SEQLAB)))
    assert offenders == []


def test_apps_do_not_import_the_command_that_lists_them():
    offenders = [str(path.relative_to(SEQLAB)) for path in APPS.rglob("*.py")
                 if any(module == "seqlab.cli" or module.startswith("seqlab.cli.") for module in imported_modules(path))]
    assert offenders == []


def test_onnx_export_reads_no_translator_attributes():
    source = (SEQLAB / "interop" / "onnx_export.py").read_text(encoding="utf-8")
    for private in ("projection_dtype", "source_vocabulary", "target_vocabulary", "is_translator"):
        assert private not in source, private


@pytest.mark.parametrize("app", ["sentiment", "charlm", "translate"])
def test_each_app_is_a_package_of_short_modules(app):
    package = APPS / app
    names = {path.stem for path in package.glob("*.py")}
    assert {"__init__", "cli", "run"} <= names and ({"settings", "recipe"} & names) and ({"data"} & names)
    for path in package.glob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 250, f"{path.relative_to(SEQLAB)} has {lines} lines"


def test_the_translator_gives_export_its_plan():
    from seqlab.apps import translate
    from seqlab.data import Vocabulary
    from seqlab.interop.onnx_export import OnnxExportError, make_plan
    from seqlab.layers import Dense
    from seqlab.model import Sequential

    source = Vocabulary([f"s{i}" for i in range(10)])
    target = Vocabulary([f"t{i}" for i in range(10)], specials=(translate.SOS, translate.EOS))
    model = translate.Translator(source, target, embedding_dim=4, units=3)
    plan = make_plan(model)
    assert plan.mode == "translator" and plan.input_names == ["source", "target_in"]
    assert make_plan(model, "translator").example_inputs[0].shape == (3, 6)
    model.projection_dtype = "bfloat16"
    with pytest.raises(OnnxExportError, match="projection_dtype = None"):
        make_plan(model)
    with pytest.raises(OnnxExportError, match="onnx_plan"):
        make_plan(Sequential([Dense(2)]), "translator")
