"""effectual.bench_sparq on hand-made networks (the real workloads need ``make report``)."""

import numpy as np
import pytest

from effectual.bench_sparq import ARRAY, modes, network_metrics
from golden.layers import Layer, save_network


def small_value_network(directory, *, rng):
    """Two fc layers whose activations (1..15) and weights (+-1..7) every 4-bit window and
    every squeeze keeps exactly; even reduction lengths; two images."""
    layers = []
    for name, (k, c) in (("fc_a", (5, 12)), ("fc_b", (3, 20))):
        weights = rng.integers(1, 8, size=(k, c)) * rng.choice([-1, 1], size=(k, c))
        layers.append([Layer(kind="fc", name=name, weights=weights,
                             activations=rng.integers(1, 16, size=c)) for _ in range(2)])
    save_network(directory, layers, name="small")


def test_metrics_of_exact_values(tmp_path):
    small_value_network(tmp_path, rng=np.random.default_rng(0))
    metrics = network_metrics(tmp_path, images=2, log=lambda *_: None)
    assert metrics["layers"] == 2 and metrics["images"] == 2
    assert metrics["macs"] == 5 * 12 + 3 * 20
    for name, error in metrics["error"].items():
        if name.startswith("sparq-w"):  # 3- and 2-bit windows cannot hold 4-bit values
            assert error > 0, name
        else:
            assert error == 0, name
    # every activation and weight is non-zero: every pair is windowed, every thread squeezed
    assert all(value == 1.0 for value in metrics["squeezed"].values())
    fill = ARRAY + ARRAY - 2 + ARRAY
    cycles = {t: (-(-12 // t) + fill) + (-(-20 // t) + fill) for t in (1, 2, 4)}
    assert metrics["cycles"] == {str(t): c for t, c in cycles.items()}
    assert metrics["speedup"]["sysmt2"] == pytest.approx(cycles[1] / cycles[2])
    assert metrics["steady_speedup"] == {"sysmt2": 32 / 16, "sysmt4": 32 / 8}


def test_modes_names():
    names = [name for name, _, _ in modes()]
    assert names[:2] == ["sparq-5opt-round", "sparq-5opt-raw"]
    assert names[-2:] == ["sysmt2", "sysmt4"]
    assert len(names) == 12
