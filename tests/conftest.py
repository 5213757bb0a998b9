"""Shared pytest configuration: tool caches in the tree, a summary of the cocotb runs."""

import collections
import re

from sim.tools import use_project_cache

use_project_cache()

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
    terminalreporter.write_line(", ".join(
        f"{simulator} {outcome}: {count}" for (simulator, outcome), count in sorted(counts.items())))
