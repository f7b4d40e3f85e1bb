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
