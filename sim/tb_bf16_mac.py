"""cocotb testbench of the emitted ``bf16_mac`` against `golden.fpraker.bf16_mac_dot`.

The tests are those of ``sim/tb_fpraker_pe.py`` (same ports, same scoreboard); the parameters
come from ``PARAM_*`` of `hw.params.BF16MACParams`, which selects the baseline's golden model.
Run through `sim.runner.run_cocotb` (see ``tests/test_cocotb_fpraker.py``).
"""

from sim.tb_fpraker_pe import (test_cycles_equal_the_cycle_model, test_long_accumulation,
                               test_random_traffic, test_reset_clears_the_accumulator,
                               test_special_values)

__all__ = ["test_special_values", "test_random_traffic", "test_long_accumulation",
           "test_cycles_equal_the_cycle_model", "test_reset_clears_the_accumulator"]
