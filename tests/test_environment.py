"""Set-up files stay consistent: one source of truth for versions, torch pinned, no torchvision."""
from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement

from posedive_lib.paths import PROJECT_ROOT


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==", f"not an exact pin: {line}"
            pins[req.name.lower().replace("_", "-")] = next(iter(req.specifier)).version
    return pins


def test_constraints_pin_cpu_compatible_torch_and_no_torchvision():
    pins = _constraints()
    assert pins["torch"] == "2.13.0"  # the project's torch (its CPU build installs here)
    for named in ("Makefile", "environment.yml", "constraints.txt"):  # the comments that name the pin agree with it
        assert f"torch=={pins['torch']}" in (PROJECT_ROOT / named).read_text(), named
    assert "torchvision" not in pins


def test_every_dependency_is_pinned_inside_its_range():
    pins = _constraints()
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is a dependency but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {spec}"
        assert "torchvision" not in name


def test_environment_yml_takes_versions_from_constraints():
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and any(p.startswith("-e .") for p in pip)
    assert all(p.startswith("-") for p in pip), "pin versions in constraints.txt, not in environment.yml"


def _no_deps_requirements() -> list[str]:
    lines = (PROJECT_ROOT / "requirements-keypoints.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_no_deps_extras_are_pinned_exactly():
    for spec in _no_deps_requirements():
        requirement = Requirement(spec)
        assert len(requirement.specifier) == 1 and next(iter(requirement.specifier)).operator == "==", spec


def test_every_library_import_is_a_declared_dependency():
    import ast
    import sys
    from importlib.metadata import packages_distributions

    declared = {Requirement(s).name.lower().replace("_", "-")
                for s in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    declared |= {Requirement(s).name.lower() for s in _no_deps_requirements()}
    providers = packages_distributions()
    missing = set()
    for path in (PROJECT_ROOT / "posedive_lib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "posedive_lib":
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(PROJECT_ROOT)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
