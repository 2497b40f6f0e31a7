"""pytest plugin of the mutation tier (`-p tests.mutation.fresh_caches`, pyproject [tool.mutmut]):
the simulators' data is loaded afresh in every test of the killer run.

mutmut runs a mutant only against the tests during which the mutated function ran (its stats
run). The simulators read their fixtures once per process (`Capabilities.load()` is cached), so
the loaders ran during the first test only and their mutants — a quirk read without its id, a
version bound dropped — met one test instead of the suite. Reloading before each test makes every
test a candidate killer for them; the devices of the session are built from the mutated loader
all the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_simulator_data() -> Iterator[None]:
    from simulators import capabilities

    capabilities._shipped.cache_clear()
    capabilities.Capabilities.load()
    yield
