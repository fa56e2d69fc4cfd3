"""CPython's own networking test modules under ``pytcp_green.patch_all()``: no failure off the known list.

All modules run once per session (two workers, see :mod:`tests.cpython.runner`); each module's test
then checks that every test passing over the kernel passes over the stack too, unless
``known_failures.txt`` lists it with a reason.  The table of numbers goes to
``build/cpython-tests/summary.md`` (and ``results.json`` has each failure's traceback).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from . import runner

MISSING = runner.test_package_missing()
MODULES = [] if MISSING else runner.available_modules()

pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def comparisons() -> Iterator[dict[str, runner.Comparison]]:
    results = runner.compare_all(MODULES, jobs=2)
    runner.write_report(results, runner.REPO / "build" / "cpython-tests")
    print("\n" + runner.summary_table(results))
    yield {c.module: c for c in results}


def test_known_failures_file_is_well_formed() -> None:
    entries = runner.load_known_failures()
    patterns = [e.pattern for e in entries]
    assert len(patterns) == len(set(patterns)), "duplicate entries"
    for entry in entries:
        assert any(runner.matches(entry.pattern, m) or entry.pattern.startswith(m + ".")
                   for m in runner.MODULES + runner.OPTIONAL_MODULES), entry.pattern
        assert len(entry.reason) > 10, f"{entry.pattern}: give a real reason"


@pytest.mark.parametrize("module", MODULES)
def test_module_keeps_its_baseline_passes(module: str, comparisons: dict[str, runner.Comparison]) -> None:
    comparison = comparisons[module]
    assert comparison.baseline_passes, f"{module}: nothing passed even unpatched: {comparison.baseline.notes}"
    unexpected = comparison.unexpected()
    report = "\n\n".join(f"{ident}: {outcome}\n{comparison.patched.details.get(ident, '')[-1500:]}"
                         for ident, outcome in unexpected.items())
    stale = comparison.stale_known()
    if stale:
        warnings.warn(f"{module}: known_failures.txt lists tests that no longer fail: {', '.join(stale)}",
                      stacklevel=1)
    assert not unexpected, (f"{module}: {len(unexpected)} tests pass over the kernel but not under patch_all() "
                            f"and are not in known_failures.txt:\n{report}\n{comparison.patched.notes}")
