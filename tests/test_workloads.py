"""Built-in workloads: the registry, the one-line error for a missing extra, and the LeNet pipeline.

The LeNet checks train on a tiny budget (2 epochs) and compare every captured layer input with an
independent numpy forward pass of the trained weights; they need torch and scikit-learn (the
workloads extra) and are skipped without them.
"""

import inspect
import sys

import numpy as np
import pytest

from effectual import workloads
from effectual.cli import UsageError

TINY = {"epochs": 2, "prune_epochs": 2}


def test_registry():
    assert set(workloads.WORKLOADS) == {"blazeface-short", "blazeface-sparse", "lenet-digits",
                                        "lenet-digits-pruned"}
    assert set(workloads.DESCRIPTIONS) == set(workloads.WORKLOADS)
    for function in workloads.WORKLOADS.values():
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["inputs", "input_range", "layout"]
        assert parameters["input_range"].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters["layout"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("name, module, hint", [
    ("lenet-digits", "torch", r"pip install -e '\.\[workloads\]' \(torch==2\.13\.0, the CPU "
                              r"build\)"),
    ("lenet-digits-pruned", "sklearn", r"pip install -e '\.\[workloads\]'"),
    ("blazeface-short", "ai_edge_litert", r"pip install -e '\.\[workloads\]'"),
    ("blazeface-sparse", "mediapipe", r"pip install --no-deps mediapipe==0\.10\.14"),
])
def test_missing_extra_is_one_line(monkeypatch, name, module, hint):
    monkeypatch.setitem(sys.modules, module, None)   # import of it now raises ImportError
    if module == "sklearn":
        monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or _fake_module("torch"))
        monkeypatch.setattr(workloads, "train_lenet", _needs_digits)
    if module == "mediapipe":   # checked after ai_edge_litert, which may be missing as well
        monkeypatch.setitem(sys.modules, "ai_edge_litert",
                            sys.modules.get("ai_edge_litert") or _fake_module("ai_edge_litert"))
    pattern = rf"^workload {name} needs {module}, from the workloads extra: {hint}$"
    with pytest.raises(UsageError, match=pattern):
        workloads.WORKLOADS[name]([])


def _fake_module(name):
    return type(sys)(name)


def _needs_digits(*, workload, **_):
    workloads._digits(workload, workloads.LENET_CONFIG)


def _import_command(argv):
    """Parse ``effectual import`` arguments with the subcommand's own parser; return its run."""
    import argparse

    from effectual import importers
    parser = argparse.ArgumentParser(prog="effectual import")
    importers.add_arguments(parser)
    args = parser.parse_args(argv)
    return importers.run(args)


def test_missing_extra_through_the_import_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(UsageError, match=r"^workload lenet-digits needs torch, from the "
                                         r"workloads extra: pip install -e '\.\[workloads\]' "
                                         r"\(torch==2\.13\.0, the CPU build\)$"):
        _import_command(["lenet-digits", "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


# --- LeNet on a tiny training budget ----------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    cache = tmp_path_factory.mktemp("cache")
    return workloads.train_lenet(config=TINY, cache=str(cache), log=lambda line: None), cache


def test_training_is_deterministic_and_cached(trained):
    first, cache = trained
    assert not first["cached"] and first["path"].startswith(str(cache))
    assert first["dense_accuracy"] > 0.5                    # 10 classes: chance is 0.1
    again = workloads.train_lenet(config=TINY, cache=str(cache), log=lambda line: None)
    assert again["cached"] and again["path"] == first["path"]
    fresh = workloads.train_lenet(config=TINY, cache=False, log=lambda line: None)
    assert not fresh["cached"] and fresh["path"] is None
    for result in (again, fresh):
        assert result["dense_accuracy"] == first["dense_accuracy"]
        assert result["pruned_accuracy"] == first["pruned_accuracy"]
        for group in ("dense", "pruned"):
            assert set(result[group]) == set(first[group])
            for key, value in first[group].items():
                np.testing.assert_array_equal(result[group][key], value)
    other = workloads.train_lenet(config={**TINY, "epochs": 3}, cache=str(cache),
                                  log=lambda line: None)
    assert not other["cached"] and other["path"] != first["path"]


def test_pruning_masks(trained):
    result, _ = trained
    for layer, _ in workloads.LENET_LAYERS:
        dense = result["dense"][f"{layer}.weight"]
        pruned = result["pruned"][f"{layer}.weight"]
        assert np.count_nonzero(pruned == 0) == round(0.9 * pruned.size)
        # the survivors are the largest-magnitude dense weights (pruned once, before fine-tuning)
        kept = np.abs(dense[pruned != 0])
        removed = np.abs(dense[pruned == 0])
        assert kept.min() >= removed.max()
        np.testing.assert_array_equal(result["pruned"][f"{layer}.bias"] != 0, True)


def _numpy_forward(state, x):
    """Independent float64 forward pass; returns each layer's input and the logits."""
    def conv(a, w, b):                                  # a [N, C, H, W], 3x3, padding 1
        padded = np.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
        return np.einsum("nchwrs,kcrs->nkhw", windows, w) + b[None, :, None, None]

    def pool(a):
        n, c, h, w = a.shape
        return a.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    p = {key: value.astype(np.float64) for key, value in state.items()}
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    inputs = {"conv1": x.astype(np.float64)}
    inputs["conv2"] = relu(conv(inputs["conv1"], p["conv1.weight"], p["conv1.bias"]))
    inputs["conv3"] = pool(relu(conv(inputs["conv2"], p["conv2.weight"], p["conv2.bias"])))
    inputs["fc1"] = pool(relu(conv(inputs["conv3"], p["conv3.weight"], p["conv3.bias"]))
                         ).reshape(len(x), -1)
    inputs["fc2"] = relu(inputs["fc1"] @ p["fc1.weight"].T + p["fc1.bias"])
    return inputs, inputs["fc2"] @ p["fc2.weight"].T + p["fc2.bias"]


def test_capture_matches_numpy_forward(trained):
    result, _ = trained
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, size=(3, 1, 8, 8)).astype(np.float32)
    info = [{"name": f"r{i}", "source": "rng"} for i in range(3)]
    capture = workloads.lenet_capture(result["pruned"], x, image_info=info, name="t", extra={})
    inputs, logits = _numpy_forward(result["pruned"], x)
    assert [layer.name for layer in capture.layers] == ["conv1", "conv2", "conv3", "fc1", "fc2"]
    for layer in capture.layers:
        np.testing.assert_allclose(layer.activations, inputs[layer.name], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(layer.weights, result["pruned"][f"{layer.name}.weight"])
        assert layer.padding == ((1, 1, 1, 1) if layer.kind == "conv" else (0, 0, 0, 0))
    assert capture.extra["predictions"] == list(logits.argmax(axis=1))


def test_workload_writes_the_network(trained, monkeypatch, tmp_path, capsys):
    _, cache = trained
    monkeypatch.setenv("EFFECTUAL_CACHE_DIR", str(cache))
    for key, value in TINY.items():
        monkeypatch.setitem(workloads.LENET_CONFIG, key, value)
    status = _import_command(["lenet-digits-pruned", "-o", str(tmp_path / "net")])
    out = capsys.readouterr().out
    assert status == 0
    assert "lenet-digits-pruned: loaded trained weights from" in out
    from golden.layers import load_manifest
    manifest = load_manifest(tmp_path / "net")
    assert [entry["name"] for entry in manifest["layers"]] == \
        ["conv1", "conv2", "conv3", "fc1", "fc2"]
    assert [entry["kind"] for entry in manifest["layers"]] == ["conv"] * 3 + ["fc"] * 2
    assert [entry["weights_shape"] for entry in manifest["layers"]] == \
        [[16, 1, 3, 3], [32, 16, 3, 3], [32, 32, 3, 3], [64, 128], [10, 64]]
    # one held-out digit per class, named after the label
    names = [image["name"] for image in manifest["images"]]
    assert [name.split("_")[0] for name in names] == [f"digit{d}" for d in range(10)]
    from sklearn.datasets import load_digits
    digits = load_digits()
    for digit, name in enumerate(names):
        assert digits.target[int(name.split("sample")[1])] == digit
    assert manifest["extra"]["pruned"] is True
    assert abs(manifest["extra"]["zero_weight_fraction"] - 0.9) < 0.002
