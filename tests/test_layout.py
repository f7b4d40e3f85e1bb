"""The README's layout section names every module, and the engine never imports Gradio."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _layout() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Where each idea lives"):text.index("## Contributing")]


def test_readme_layout_names_every_module():
    layout = _layout()
    missing = [str(path.relative_to(ROOT)) for package in ("isnet", "explorer")
               for path in sorted((ROOT / package).rglob("*.py"))
               if path.name != "__init__.py"
               and not re.search(rf"\b{re.escape(path.stem)}\b", layout)]
    assert not missing, f"add these modules to README.md's layout section: {missing}"


def test_engine_never_imports_gradio():
    offenders = []
    for path in sorted((ROOT / "isnet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "gradio" for name in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


def test_public_api_is_small():
    import isnet

    assert len(isnet.__all__) <= 25
    assert all(hasattr(isnet, name) for name in isnet.__all__)
