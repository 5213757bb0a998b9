"""``effectual bench``: suite selection, the golden suite's figures and the JSON file."""

import json

import pytest

from effectual import bench
from effectual.cli import main


def test_golden_suite_json_matches_its_definition(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--suite", "golden", "--values", "100", "--repeat", "1",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert list(data["suites"]) == ["golden"]
    results = data["suites"]["golden"]["results"]
    assert len(results) == len(bench._kernels(96, 0))
    for result in results:
        assert result["values"] == 96  # rounded down to a multiple of the 16 lanes
        assert result["values_per_second"] == pytest.approx(96 / result["best_seconds"])
    printed = capsys.readouterr().out
    assert "== suite golden ==" in printed
    assert all(result["kernel"] in printed for result in results)


def test_every_suite_names_an_importable_function():
    import importlib

    for name, target in bench.SUITES.items():
        module_name, function_name = target.split(":")
        assert callable(getattr(importlib.import_module(module_name), function_name)), name


def test_unknown_suite_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--suite", "nonsense"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
