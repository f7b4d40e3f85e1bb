"""The layout map (docs/layout.md) names every module, the README's short map names every
sub-package and links the full one, and the engine never imports Gradio."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_map() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Where each idea lives"):text.index("## Contributing")]


def test_layout_map_names_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    missing = [str(path.relative_to(ROOT)) for package in ("isnet", "explorer")
               for path in sorted((ROOT / package).rglob("*.py"))
               if path.name != "__init__.py"
               and not re.search(rf"\b{re.escape(path.stem)}\b", layout)]
    assert not missing, f"add these modules to docs/layout.md: {missing}"


def test_readme_map_names_every_sub_package_and_links_the_full_map():
    short = _readme_map()
    assert "docs/layout.md" in short
    packages = sorted(path.parent.relative_to(ROOT).name for package in ("isnet", "explorer")
                      for path in (ROOT / package).glob("*/__init__.py"))
    missing = [name for name in packages if f"{name}/" not in short]
    assert not missing, f"name these sub-packages in README.md's short map: {missing}"


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


def _module_imports(package: str) -> dict[str, set[str]]:
    """Module → the package's modules it imports at module level (not inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
        graph[name] = targets
    return {k: {t for t in v if t in graph and t != k} for k, v in graph.items()}


def _visit(graph: dict[str, set[str]], state: dict[str, int], node: str, path: list[str]) -> None:
    """Depth-first search; ``state`` 1 = on the current path, 2 = done."""
    state[node] = 1
    for target in sorted(graph[node]):
        if target.startswith(node + "."):  # a package importing its own modules
            continue
        assert state.get(target) != 1, f"import cycle: {' → '.join(path + [target])}"
        if target not in state:
            _visit(graph, state, target, path + [target])
    state[node] = 2


def test_no_import_cycles_between_modules():
    for package in ("isnet", "explorer"):
        graph = _module_imports(package)
        state: dict[str, int] = {}
        for module in sorted(graph):
            if module not in state:
                _visit(graph, state, module, [module])
