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
    """Each callback of ours goes through ``ui.common.user_errors``, so a core ValueError always reaches the
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
