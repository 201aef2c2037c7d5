"""The library's architecture as tests: the import-linter contracts of pyproject.toml (layers, the
one door to the Kaldi bindings, independent decoding backends), no import cycle, no private name
imported across modules, no module global assigned from another module, no function with more than
three positional parameters."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "asr_kd"


def _lint(root: Path) -> int:
    """``lint-imports`` on the package below ``root``, in a subprocess (import-linter reconfigures
    logging, which would silence the log assertions of later tests)."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    run = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    print(run.stdout[-3000:], run.stderr[-3000:])
    return run.returncode


def test_import_contracts_hold():
    assert _lint(ROOT) == 0


@pytest.mark.parametrize(
    "module, upward",
    [
        ("asr_kd/utils/io.py", "asr_kd.cli"),
        ("asr_kd/nnet/train.py", "asr_kd.distill.soft_targets"),
        ("asr_kd/data/features.py", "kaldifst"),
        ("asr_kd/decode/k2_decoder.py", "asr_kd.decode.kaldi_decoder"),
        ("asr_kd/cli/data.py", "asr_kd.utils.io"),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path, module, upward):
    """A copy of the package with one forbidden import added fails the check; the last case (a
    downward import) is the control: the copy itself passes."""
    shutil.copytree(PACKAGE, tmp_path / "asr_kd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as f:
        f.write(f"\nimport {upward}  # noqa\n")
    assert (_lint(tmp_path) == 0) == (module == "asr_kd/cli/data.py")


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield ".".join(parts), path


def test_no_import_cycle():
    graph = grimp.build_graph("asr_kd")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and imported.startswith("asr_kd") and graph.chain_exists(imported, module):
                cycles.append((module, imported, graph.find_shortest_chain(imported, module)))
    # a package's __init__ importing its own submodules (the cli) is not a cycle of the library
    cycles = [c for c in cycles if not c[1].startswith(c[0] + ".") and not c[0].startswith(c[1] + ".")]
    assert not cycles, cycles[:5]


def test_no_private_name_crosses_a_module():
    found = []
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("asr_kd")
                and node.module != name
            ):
                found += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not found, found


def test_no_function_takes_more_than_three_positional_parameters():
    """Past the third, parameters are keyword-only: a call site names what it passes."""
    found = []
    for name, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [a.arg for a in node.args.posonlyargs + node.args.args]
                params = params[1:] if params[:1] in (["self"], ["cls"]) else params
                if len(params) > 3:
                    found.append(f"{name}.{node.name}({', '.join(params)})")
    assert not found, found


def test_no_module_global_set_from_another_module():
    found = []
    for name, path in _modules():
        tree = ast.parse(path.read_text())
        imported = {
            a.asname or a.name.split(".")[-1]
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("asr_kd")
            for a in n.names
        }
        imported |= {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
            if a.name.startswith("asr_kd")
        }
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign)
                else []
            )
            for t in targets:
                base = t.value if isinstance(t, (ast.Attribute, ast.Subscript)) else None
                while isinstance(base, (ast.Attribute, ast.Subscript)):
                    base = base.value
                if (
                    isinstance(base, ast.Name)
                    and base.id in imported
                    and isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                ):
                    found.append(f"{name}: {ast.unparse(t)}")
    assert not found, found


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_the_tree_passes_ruff(command):
    """The style of pyproject.toml's [tool.ruff] holds everywhere (``ruff format`` and ``ruff check``
    fix what this finds)."""
    ruff = Path(sys.executable).with_name("ruff")
    r = subprocess.run(
        [str(ruff) if ruff.exists() else "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def _contract_layers() -> dict:
    """{package: layer number} from pyproject's layers contract (0 = the lowest)."""
    import tomllib

    layers = next(
        c
        for c in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
        if c["id"] == "layers"
    )["layers"]
    return {
        name.strip().split(".")[1]: len(layers) - 1 - k for k, layer in enumerate(layers) for name in layer.split("|")
    }


def test_the_layer_picture_matches_the_contract():
    """README's Layout draws every package at its contract layer, and each package's docstring that
    names a layer names that one: the picture lives in the contract, the rest is checked against it."""
    import re

    want = _contract_layers()
    assert set(want) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}  # every package has a layer
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("asr_kd/                 the library") :]
    drawn = {}
    for line in block.splitlines()[1:]:
        m = re.match(r"^  ((?:[a-z_]+/\s*)+?)\s*(\d+)\s", line)
        if m:
            for pkg in m.group(1).split():
                drawn[pkg.rstrip("/")] = int(m.group(2))
        elif not line.startswith("   "):
            break
    assert drawn == want
    for pkg, layer in want.items():
        m = re.match(r'"""Layer (\d+)', (PACKAGE / pkg / "__init__.py").read_text())
        if m:
            assert int(m.group(1)) == layer, pkg
