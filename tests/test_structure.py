"""Project rules a refactor could quietly break."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_playground_never_imports_gradio():
    for path in (ROOT / "playground").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.split(".")[0] == "gradio" for name in names), f"{path} imports gradio"
    # And nothing it imports pulls gradio in indirectly.
    code = (
        "import importlib, pkgutil, sys, playground\n"
        "for m in pkgutil.walk_packages(playground.__path__, 'playground.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('gradio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_importing_the_app_starts_no_server_and_downloads_nothing():
    code = "import app, sys; print(callable(app.build_demo))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
    assert "Running on" not in out.stdout


def test_space_front_matter():
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("---\n")
    front = readme.split("---\n")[1]
    fields = dict(line.split(":", 1) for line in front.strip().splitlines())
    assert fields["sdk"].strip() == "gradio"
    assert fields["app_file"].strip() == "app.py"
    assert fields["sdk_version"].strip().startswith("6.")
    assert "make run" in readme and "make test" in readme


def test_every_event_handler_takes_the_one_error_path():
    """Each callback of ours goes through ``ui.handlers.user_errors``, so a core ValueError always reaches the
    user as a sentence (not a blank "Error"), however the handler was wired."""
    code = (
        "import app\n"
        "demo = app.build_demo()\n"
        "ours = [f for f in demo.fns.values() if f.fn is not None and getattr(f.fn, '__module__', '').startswith(('ui.', 'app'))]\n"
        "print(len(ours))\n"
        "print(' '.join(sorted({f.fn.__name__ for f in ours if not getattr(f.fn, 'user_errors', False)})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    count, unwrapped = out.stdout.splitlines()[-2:]
    assert int(count) > 30  # the check saw the app's handlers
    assert unwrapped == ""


# --- The shape of the tree (issue #17, "one room per idea") ------------------------------------------------

PACKAGES = ("playground", "ui")
MAX_TOP_LEVEL_MODULES = 14
MAX_FUNCTION_LINES = 90


def _modules() -> dict[str, Path]:
    """Every module of ``playground/`` and ``ui/`` by its dotted name (a package by its ``__init__``)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST):
    """Every import statement that can run: at module level and inside functions (an import in a function
    still forms a cycle the moment that function is called before the other module finished loading), but
    not under ``if TYPE_CHECKING:``, which never runs."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _import_targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules) -> set[str]:
    """The modules of ours that ``node`` (in module ``name`` at ``path``) loads."""
    if isinstance(node, ast.Import):
        bases = [alias.name for alias in node.names]
        names: list[str] = []
    else:
        if node.level:
            package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        bases = [base]
        names = [alias.name for alias in node.names]
    targets = set()
    for base in bases:
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = base.split(".")
        targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        targets.update(f"{base}.{n}" for n in names)  # `from playground import config` loads a module
    return {t for t in targets if t in modules and t != name}


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = set().union(*(_import_targets(name, path, n, modules) for n in _runtime_imports(tree)))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_resolves_every_form():
    """The graph the cycle test walks sees plain, from-, package-level and relative imports."""
    modules = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c"}
    here = Path("pkg/sub/c.py")

    def targets(source: str) -> set[str]:
        return _import_targets("pkg.sub.c", here, ast.parse(source).body[0], modules)

    assert targets("import pkg.sub.b") == {"pkg", "pkg.sub", "pkg.sub.b"}
    assert targets("from pkg import a") == {"pkg", "pkg.a"}
    assert targets("from pkg.sub.b import thing") == {"pkg", "pkg.sub", "pkg.sub.b"}
    assert targets("from . import b") == {"pkg", "pkg.sub", "pkg.sub.b"}
    assert targets("from ..a import thing") == {"pkg", "pkg.a"}
    assert targets("import numpy") == set()
    assert _cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert _cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycle_in_playground_or_ui():
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles (each a set of modules importing one another):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_tab_imports_another_tab():
    graph = _import_graph()
    tabs = {name for name in graph if name.startswith("ui.tabs.")}
    crossing = sorted(f"{tab} imports {other}" for tab in tabs for other in graph[tab] & tabs)
    assert not crossing, "\n".join(crossing)


def test_playground_top_level_stays_small_and_features_live_in_subpackages():
    top = sorted(p.name for p in (ROOT / "playground").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules directly in playground/: {top}"
    for package in ("data", "training", "units", "serving", "explain", "weights"):
        assert (ROOT / "playground" / package / "__init__.py").is_file(), f"playground/{package}/ is a package"
        assert len(list((ROOT / "playground" / package).glob("*.py"))) > 1, f"playground/{package}/ holds modules"
    assert (ROOT / "ui" / "tabs" / "__init__.py").is_file()


def test_no_function_is_longer_than_90_lines():
    too_long = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def _readme_section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## `` heading."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def _code_blocks(text: str, languages: tuple[str, ...]) -> list[str]:
    blocks, current = [], None
    for line in text.splitlines():
        if current is None and line.startswith("```") and line[3:].strip() in languages:
            current = []
        elif current is not None and line.startswith("```"):
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _readme_import_lines() -> list[str]:
    """Every ``from playground …`` / ``import playground …`` statement of the Python API section's code,
    a parenthesised one joined onto one line."""
    statements = []
    for block in _code_blocks(_readme_section("Python API"), ("python",)):
        lines = iter(block.splitlines())
        for line in lines:
            if line.startswith(("from playground", "import playground")):
                statement = line.split("#")[0].rstrip()
                while statement.count("(") > statement.count(")"):
                    statement += " " + next(lines).split("#")[0].strip()
                statements.append(statement)
    return statements


def test_every_import_in_the_readme_python_api_runs():
    statements = _readme_import_lines()
    assert len(statements) >= 5, statements  # the section was found and has its examples
    code = "\n".join(statements)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"{out.stderr}\nwhile running:\n{code}"


def _module_map() -> dict[str, str]:
    """The README's module map: the first ``text`` block under ``### Module map``, one ``path  role`` a
    line (a path ending in ``/`` names a folder)."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n### Module map\n") :]
    block = _code_blocks(section, ("text",))[0]
    entries = {}
    for line in block.splitlines():
        if not line.strip():
            continue
        path, _, role = line.strip().partition(" ")
        assert role.strip(), f"module map: {path} has no role"
        assert path not in entries, f"module map: {path} listed twice"
        entries[path] = role.strip()
    return entries


def test_readme_module_map_lists_exactly_the_tree():
    entries = _module_map()
    listed = {path for path in entries if path.endswith(".py")}
    actual = {"app.py"} | {
        str(p.relative_to(ROOT)) for folder in ("playground", "ui", "bench") for p in (ROOT / folder).rglob("*.py")
    }
    assert not actual - listed, f"missing from the README's module map: {sorted(actual - listed)}"
    tests = {p for p in listed if p.startswith("tests/")}
    assert not listed - actual - tests, f"in the module map but not in the tree: {sorted(listed - actual - tests)}"
    assert all((ROOT / p).exists() for p in tests | {p for p in entries if p.endswith("/")}), "listed paths exist"
