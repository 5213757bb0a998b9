"""A tile on a board: UART host link, LEDs and the built-in self-test around a bit-parallel,
TCLp (bit-serial), TCLe (term-serial) or FPRaker (bfloat16) tile, named as the golden design
registry names them (`DESIGNS`).

`TileLink` is the tile behind a `hw.hostlink.HostLink` (byte streams in and out);
`BoardTile` adds the UART (8N1, ``divisor`` clock cycles per bit) and the LED outputs;
`BoardTileTop` puts a `BoardTile` on a board of `hw.board.BOARDS` (board clock, button 0 as
reset, the board's USB-serial UART, LEDs as listed in `LED_MAP`).
"""

import dataclasses
import importlib

from amaranth.hdl import (ClockDomain, DomainRenamer, Elaboratable, Module, ResetInserter,
                          Signal, Value)
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .hostlink import HostLink
from .params import FPRakerTileParams, TCLeTileParams, TileParams
from .uart import UARTRx, UARTTx

__all__ = ["CLOCK_DIVIDERS", "TILE_CLOCK_NET", "DESIGNS", "FIXED_PATTERNS", "FIXED_GATING",
           "LED_ROLES", "LED_MAP", "TileLink", "BoardTile", "BoardTileTop", "make_tile",
           "design_name", "design_backend"]

#: design name (as in `golden.designs` and ``effectual sim``) -> (component "module:Class",
#: back end, a name of `hw.protocol.BACKENDS`): ``baseline`` and ``wskip`` are the
#: bit-parallel tile without and with a weight-skipping pattern, ``dstripes`` and ``tclp`` the
#: TCLp tile without and with one, ``tcle`` the TCLe tile (term-serial, zero weights gated, any
#: pattern) and ``pragmatic`` the same tile with no pattern and no zero-weight gating
#: (`hw.params.TCLeTileParams`), ``fpraker`` the bfloat16 FPRaker tile
#: (`hw.params.FPRakerTileParams`)
DESIGNS = {
    "baseline": ("hw.tile:BitParallelTile", "bit-parallel"),
    "dstripes": ("hw.tile:TCLpTile", "bit-serial"),
    "wskip": ("hw.tile:BitParallelTile", "bit-parallel"),
    "tclp": ("hw.tile:TCLpTile", "bit-serial"),
    "tcle": ("hw.term_serial:TCLeTile", "term-serial"),
    "pragmatic": ("hw.term_serial:TCLeTile", "term-serial"),
    "fpraker": ("hw.fpraker_tile:FPRakerTile", "fpraker"),
}
#: designs whose tile has a fixed pattern (the others take any pattern)
FIXED_PATTERNS = {"baseline": "none", "dstripes": "none", "pragmatic": "none",
                  "fpraker": "none"}
#: term-serial designs -> their fixed ``gate_zero_weights``
FIXED_GATING = {"tcle": True, "pragmatic": False}

#: the clock dividers `BoardTileTop` can put between the board clock and the tile
CLOCK_DIVIDERS = (1, 2, 4, 8)
#: the netlist name of `BoardTileTop`'s divided clock (Yosys keeps the top-level name)
TILE_CLOCK_NET = "tile_clk"

#: the meaning of the bits of `BoardTile.leds`, LSB first
LED_ROLES = ("idle", "busy", "pass", "fail")

#: board -> LED role -> index of the board's ``led`` resource. The iCEBreaker has a red (0) and
#: a green (1) LED on the main board and five more (2..6) on the break-off PMOD (attached when
#: it ships); the ULX3S has eight LEDs in a row.
LED_MAP = {
    "icebreaker": {"fail": 0, "pass": 1, "idle": 2, "busy": 3},
    "ulx3s-85f": {"idle": 0, "busy": 1, "pass": 2, "fail": 3},
}


def design_backend(design):
    """Return the back end (a name of `hw.protocol.BACKENDS`) of ``design``; ``ValueError`` for
    an unknown design."""
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; known designs: {', '.join(DESIGNS)}")
    return DESIGNS[design][1]


def design_name(backend, pattern, gate_zero_weights=True):
    """Return the `DESIGNS` name of a tile: its back end (`hw.protocol.BACKENDS`), its pattern
    and (term-serial) whether it gates zero weights."""
    if backend == "term-serial":
        return "tcle" if gate_zero_weights else "pragmatic"
    if backend == "fpraker":
        return "fpraker"
    if backend == "bit-serial":
        return "dstripes" if pattern == "none" else "tclp"
    if backend == "bit-parallel":
        return "baseline" if pattern == "none" else "wskip"
    raise ValueError(f"backend must be one of bit-parallel, bit-serial, term-serial, "
                     f"fpraker, not {backend!r}")


def make_tile(design, params):
    """Return a new tile component of ``design`` (a key of `DESIGNS`) for ``params``.

    ``params`` is a `TCLeTileParams` for the term-serial designs (``tcle``, ``pragmatic``),
    an `FPRakerTileParams` for ``fpraker`` and a plain `TileParams` for the others
    (``TypeError`` otherwise). ``ValueError`` for an
    unknown design, a pattern the design does not have (`FIXED_PATTERNS`) or a zero-weight
    gating it does not have (`FIXED_GATING`).
    """
    backend = design_backend(design)
    if backend == "term-serial":
        if not isinstance(params, TCLeTileParams):
            raise TypeError(f"design {design} takes TCLeTileParams, not {params!r}")
    elif backend == "fpraker":
        if not isinstance(params, FPRakerTileParams):
            raise TypeError(f"design {design} takes FPRakerTileParams, not {params!r}")
    elif not isinstance(params, TileParams) or isinstance(params, (TCLeTileParams,
                                                                   FPRakerTileParams)):
        raise TypeError(f"design {design} takes TileParams, not {params!r}")
    fixed = FIXED_PATTERNS.get(design)
    if fixed is not None and params.pattern != fixed:
        other = design_name(backend, params.pattern, gate_zero_weights=True)
        raise ValueError(f"design {design} has pattern {fixed}, not {params.pattern!r} (with a "
                         f"pattern use {other})")
    gating = FIXED_GATING.get(design)
    if gating is not None and params.gate_zero_weights != gating:
        raise ValueError(f"design {design} has gate_zero_weights={gating}, not "
                         f"{params.gate_zero_weights!r} (use "
                         f"{design_name(backend, params.pattern, not gating)})")
    module_name, class_name = DESIGNS[design][0].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**dataclasses.asdict(params))


class TileLink(wiring.Component):
    """A tile behind the host-link protocol engine (byte streams in and out, no UART).

    Parameters
    ----------
    params : `hw.params.TileParams` (`hw.params.TCLeTileParams` for ``tcle``, ``pragmatic``;
        `hw.params.FPRakerTileParams` for ``fpraker``)
    design : str
        A key of `DESIGNS`: ``"baseline"``, ``"dstripes"``, ``"wskip"``, ``"tclp"``,
        ``"tcle"``, ``"pragmatic"`` or ``"fpraker"``.
    timeout, selftest, clock_hz
        As `hw.hostlink.HostLink`.

    Members
    -------
    rx : ``In(stream.Signature(8))``; rx_error : ``In(1)``; tx : ``Out(stream.Signature(8))``
        As `hw.hostlink.HostLink`.
    running, busy, selftest_done, selftest_pass, link_idle : ``Out(1)``
        As `hw.hostlink.HostLink`.
    """

    def __init__(self, *, params, design="tclp", timeout=1000, selftest=None, clock_hz=0):
        self._tile = make_tile(design, params)
        self._design = design
        self._link = HostLink(params=params, backend=DESIGNS[design][1], timeout=timeout,
                              selftest=selftest, clock_hz=clock_hz)
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_error": In(1), "tx": Out(stream.Signature(8)),
            "running": Out(1), "busy": Out(1), "selftest_done": Out(1), "selftest_pass": Out(1),
            "link_idle": Out(1),
        })

    @property
    def params(self):
        """The tile's `TileParams` (`TCLeTileParams` for a term-serial design)."""
        return self._link.params

    @property
    def design(self):
        """The design name."""
        return self._design

    @property
    def backend(self):
        """The back end (a name of `hw.protocol.BACKENDS`)."""
        return DESIGNS[self._design][1]

    @property
    def link(self):
        """The `HostLink`."""
        return self._link

    @property
    def tile(self):
        """The tile component."""
        return self._tile

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self._link
        m.submodules.tile = tile = self._tile
        m.d.comb += [
            link.rx.valid.eq(self.rx.valid), link.rx.payload.eq(self.rx.payload),
            self.rx.ready.eq(link.rx.ready), link.rx_error.eq(self.rx_error),
            self.tx.valid.eq(link.tx.valid), self.tx.payload.eq(link.tx.payload),
            link.tx.ready.eq(self.tx.ready),
            self.running.eq(link.running), self.busy.eq(link.busy),
            self.selftest_done.eq(link.selftest_done),
            self.selftest_pass.eq(link.selftest_pass), self.link_idle.eq(link.link_idle),
            # streams to and from the tile: raw bits into the tile's layouts
            tile.weights.valid.eq(link.weights.valid),
            Value.cast(tile.weights.payload).eq(link.weights.payload),
            link.weights.ready.eq(tile.weights.ready),
            tile.acts.valid.eq(link.acts.valid),
            Value.cast(tile.acts.payload).eq(link.acts.payload),
            link.acts.ready.eq(tile.acts.ready),
            link.results.valid.eq(tile.results.valid),
            link.results.payload.eq(tile.results.payload),
            tile.results.ready.eq(link.results.ready),
            tile.start.eq(link.start), tile.rows.eq(link.rows), tile.steps.eq(link.steps),
            tile.load_weights.eq(link.load_weights),
            link.tile_done.eq(tile.done), link.tile_cycles.eq(tile.cycles),
        ]
        return m


class BoardTile(wiring.Component):
    """`TileLink` with an 8N1 UART on two pins and four status LEDs.

    Parameters
    ----------
    params, design, timeout, selftest, clock_hz
        As `TileLink`.
    divisor : int, 4..65535
        UART clock cycles per bit (`hw.uart.baud_divisor`).

    Members
    -------
    rx : ``In(1, init=1)``
        UART line from the host (asynchronous; synchronized inside).
    tx : ``Out(1, init=1)``
        UART line to the host (registered).
    leds : ``Out(4)``
        ``LED_ROLES`` LSB first: idle (waiting for a request, no run in progress), busy (a run
        or the self-test in progress), pass / fail (result of the last self-test; both off
        before the first one completes).

    After reset the self-test runs once (when ``selftest`` is given), then the board waits for
    requests.
    """

    def __init__(self, *, params, design="tclp", divisor=104, timeout=None, selftest=None,
                 clock_hz=0):
        self._uart_rx = UARTRx(divisor=divisor)
        self._uart_tx = UARTTx(divisor=divisor)
        if timeout is None:
            timeout = 40 * divisor          # four character times of silence
        self._core = TileLink(params=params, design=design, timeout=timeout,
                              selftest=selftest, clock_hz=clock_hz)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(4)})

    @property
    def core(self):
        """The `TileLink`."""
        return self._core

    @property
    def divisor(self):
        """UART clock cycles per bit."""
        return self._divisor

    @property
    def params(self):
        """The tile's `TileParams` (`TCLeTileParams` for a term-serial design)."""
        return self._core.params

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self._uart_rx
        m.submodules.uart_tx = utx = self._uart_tx
        m.submodules.core = core = self._core
        m.d.comb += [
            urx.rx.eq(self.rx), self.tx.eq(utx.tx),
            core.rx.valid.eq(urx.o_stream.valid), core.rx.payload.eq(urx.o_stream.payload),
            urx.o_stream.ready.eq(core.rx.ready),
            core.rx_error.eq(urx.frame_error | urx.overrun),
            utx.i_stream.valid.eq(core.tx.valid), utx.i_stream.payload.eq(core.tx.payload),
            core.tx.ready.eq(utx.i_stream.ready),
            self.leds.eq(Value.cast(core.link_idle & ~core.busy)
                         | (core.busy << 1)
                         | ((core.selftest_done & core.selftest_pass) << 2)
                         | ((core.selftest_done & ~core.selftest_pass) << 3)),
        ]
        return m


class BoardTileTop(Elaboratable):
    """A `BoardTile` on a board: clock, button-0 reset, the USB-serial UART and the LEDs.

    Parameters
    ----------
    board : str
        A key of `LED_MAP` (and of `hw.board.BOARDS`).
    board_tile : `BoardTile`
    clock_divider : int, one of `CLOCK_DIVIDERS`
        The board tile runs on the board clock divided by this (1: the board clock itself). A
        divided clock is a flip-flop of the board clock domain, the clock of a new domain
        ``tile`` (net `TILE_CLOCK_NET`; the fabric routes it on a global net); the button reset
        is synchronized into it. The board tile's UART divisor and ``clock_hz`` must be those
        of the divided clock, and the build must constrain the net to its frequency
        (`effectual.fpga.build_tile_bitstream` does).
    """

    def __init__(self, board, board_tile, *, clock_divider=1):
        if board not in LED_MAP:
            raise ValueError(f"unknown board {board!r}; known boards: {', '.join(LED_MAP)}")
        if not isinstance(clock_divider, int) or isinstance(clock_divider, bool):
            raise TypeError(f"clock_divider must be one of "
                            f"{', '.join(map(str, CLOCK_DIVIDERS))}, not {clock_divider!r}")
        if clock_divider not in CLOCK_DIVIDERS:
            raise ValueError(f"clock_divider must be one of "
                             f"{', '.join(map(str, CLOCK_DIVIDERS))}, not {clock_divider!r}")
        self.board = board
        self.board_tile = board_tile
        self.clock_divider = clock_divider
        self._tile_domain = ClockDomain("tile") if clock_divider > 1 else None

    @property
    def tile_clock(self):
        """The divided clock (net `TILE_CLOCK_NET`), or None with ``clock_divider=1``."""
        return self._tile_domain.clk if self._tile_domain is not None else None

    def elaborate(self, platform):
        m = Module()
        logic = Module()
        logic.submodules.board_tile = bt = self.board_tile
        domain = "sync"
        if self.clock_divider > 1:
            domain = "tile"
            m.domains.tile = tile = self._tile_domain
            # the clock is a register of the board clock domain: it toggles every
            # clock_divider / 2 board cycles
            count = Signal(range(self.clock_divider // 2))
            with m.If(count == self.clock_divider // 2 - 1):
                m.d.sync += [count.eq(0), tile.clk.eq(~tile.clk)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        reset = Signal()
        if platform is not None:
            if self.board == "icebreaker" and ("led", 2) not in platform.resources:
                platform.add_resources(platform.break_off_pmod)
            m.submodules.button = button = io.Buffer("i", platform.request("button", 0, dir="-"))
            m.submodules.button_sync = FFSynchronizer(button.i, reset, o_domain=domain)
            uart = platform.request("uart", 0, dir="-")
            m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
            m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
            m.d.comb += [bt.rx.eq(rx.i), tx.o.eq(bt.tx)]
            for role, index in LED_MAP[self.board].items():
                led = io.Buffer("o", platform.request("led", index, dir="-"))
                m.submodules[f"led_{role}"] = led
                m.d.comb += led.o.eq(bt.leds[LED_ROLES.index(role)])
        logic = ResetInserter(reset)(logic)
        m.submodules.logic = DomainRenamer(domain)(logic) if domain != "sync" else logic
        return m
