"""The package's layering (docs/architecture.md), checked on the import graph of its source."""

from salspike import layers


def test_no_upward_or_engine_to_engine_imports():
    """Catches: an engine importing another engine (e.g. salspike.brian importing salspike.matrix
    to learn what the circuit is), the ground importing an engine, or anything importing the CLI."""
    graph = layers.import_graph()
    assert "salspike.circuit.plan" in graph and "salspike.levels.base" in graph
    assert layers.violations(graph) == []


def test_the_checker_sees_a_violation():
    """The checker itself flags an upward import and an engine-to-engine import."""
    graph = {"salspike.metrics": {"salspike.matrix.rules"}, "salspike.brian.rate": {"salspike.matrix.engine"},
             "salspike.cli": {"salspike.levels"}}
    bad = layers.violations(graph)
    assert len(bad) == 2
    assert any("upward" in b for b in bad) and any("one engine imports the other" in b for b in bad)
