"""cocotb on the emitted Verilog of the tile board top: the host driver end to end through the
UART pins, and a fuzz of random and mutated frames (``sim/tb_board_tile.py``).

The board top (`hw.board_tile.BoardTile`: UART, host link, self-test vectors from golden, the
real tile: TCLp for design tclp, bit-parallel with a pattern for wskip, TCLe for tcle, the
bfloat16 FPRaker tile for fpraker) is emitted into ``tmp_path`` and run on Verilator (the fuzz:
about 2000 bursts) and on Icarus (the end-to-end run only, wskip, tcle and fpraker; Icarus is
slower).
"""

import os

import pytest

from effectual.driver import selftest_vectors
from hw.board_tile import DESIGNS, BoardTile
from hw.hostlink import SelfTest
from hw.params import FPRakerTileParams, TCLeTileParams, TileParams
from sim.runner import read_results, tool_environment, verilator_makeflags

P = TileParams(filters=2, lanes=4, windows=2, weight_width=8, act_width=8, act_signed=False,
               pattern="L<2,1>", weight_rows=32, act_rows=32)
DIVISOR = 4
TIMEOUT = 40 * DIVISOR


def run_board_tile(design, simulator, tmp_path, testcase, extra_env, params=P):
    """Emit, build and run ``sim.tb_board_tile``; return {test name: outcome}.

    The board top is not a registered block, so this calls cocotb's runner itself, with the
    tools and Verilator make flags of `sim.runner` (`tool_environment`, `verilator_makeflags`).
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    dut = BoardTile(params=params, design=design, divisor=DIVISOR, timeout=TIMEOUT,
                    selftest=SelfTest(**selftest_vectors(params, backend=DESIGNS[design][1])))
    source = tmp_path / "board_tile.v"
    source.write_text(verilog.convert(dut, name="board_tile", emit_src=False))
    results_xml = tmp_path / "results.xml"
    env = {**params.to_env(), "DESIGN": design, "DIVISOR": str(DIVISOR), "TIMEOUT": str(TIMEOUT),
           "SEED": os.environ.get("SEED", "1"), **extra_env}
    makeflags = verilator_makeflags() if simulator == "verilator" else ""
    with tool_environment(makeflags):
        runner = get_runner(simulator)
        runner.build(sources=[source], hdl_toplevel="board_tile", build_dir=tmp_path / simulator,
                     timescale=("1ns", "1ps"), always=True,
                     build_args=["-Wno-fatal"] if simulator == "verilator" else [])
        try:
            runner.test(test_module="sim.tb_board_tile", hdl_toplevel="board_tile",
                        test_dir=tmp_path, results_xml=str(results_xml), extra_env=env,
                        testcase=testcase)
        except SystemExit:
            pass  # under pytest the runner exits on failures; the results file decides below
    assert results_xml.is_file(), "no cocotb results: the simulation did not run"
    results = read_results(results_xml)
    bad = [f"{r.name}: {r.outcome}: {r.message}" for r in results if r.outcome != "passed"]
    assert not bad, "\n".join(bad)
    return {r.name.rsplit(".", 1)[-1]: r.outcome for r in results}


@pytest.mark.cocotb
def test_cocotb_board_tile_fuzz_verilator(tmp_path):
    outcomes = run_board_tile("tclp", "verilator", tmp_path,
                              ["test_fuzz_then_golden", "test_driver_layer_end_to_end"],
                              {"FUZZ_BURSTS": os.environ.get("FUZZ_BURSTS", "2000"),
                               "LAYER_WINDOWS": "4"})
    assert outcomes == {"test_fuzz_then_golden": "passed",
                        "test_driver_layer_end_to_end": "passed"}


@pytest.mark.cocotb
def test_cocotb_board_tile_end_to_end_icarus(tmp_path):
    outcomes = run_board_tile("wskip", "icarus", tmp_path,
                              ["test_driver_layer_end_to_end"], {"LAYER_WINDOWS": "2"})
    assert outcomes == {"test_driver_layer_end_to_end": "passed"}


@pytest.mark.cocotb
def test_cocotb_board_tile_tcle_end_to_end_icarus(tmp_path):
    """The TCLe board top (term-serial cycles predicted by the driver from
    golden.pragmatic.schedule_cycles) through the UART pins on Icarus."""
    params = TCLeTileParams(**P.__dict__, encoding="naf", first_stage_bits=1)
    outcomes = run_board_tile("tcle", "icarus", tmp_path, ["test_driver_layer_end_to_end"],
                              {"LAYER_WINDOWS": "2"}, params=params)
    assert outcomes == {"test_driver_layer_end_to_end": "passed"}


@pytest.mark.cocotb
def test_cocotb_board_tile_fpraker_end_to_end_icarus(tmp_path):
    """The FPRaker board top (back end 3; the driver runs the float view of the self-test layer
    through golden.fpraker_tile.layer_passes, results bit for bit, lock-step cycles) through
    the UART pins on Icarus: 2 PEs x 2 lanes, 4 sets per pass."""
    params = FPRakerTileParams(filters=2, lanes=2, weight_rows=4, act_rows=4)
    outcomes = run_board_tile("fpraker", "icarus", tmp_path, ["test_driver_layer_end_to_end"],
                              {"LAYER_WINDOWS": "1"}, params=params)
    assert outcomes == {"test_driver_layer_end_to_end": "passed"}
