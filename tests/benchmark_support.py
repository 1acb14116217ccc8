"""Loading the scripts of benchmarks/ (not a package) as modules, for the slow learning tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def print_checks(checks: list[tuple[str, bool]]) -> list[str]:
    """Print a benchmark's ``(text, passed)`` criteria as ``[PASS]`` / ``[FAIL]`` lines; returns the
    failed ones' texts."""
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {text}")
    return [text for text, ok in checks if not ok]
