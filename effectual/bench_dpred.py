"""The ``dpred`` bench suite: DPRed off-chip traffic on real networks, and codec throughput.

Traffic (`traffic_table`): for BlazeFace short range, BlazeFace full range sparse and the LeNet
(``lenet-digits``), each imported at 8 and at 16 bits, the bytes of weights and of input
activations of every conv/fc layer in the DPRed word layout (`golden.dpred.layer_traffic`:
channel-minor storage, 32-bit words, each tensor moved once per layer per image), for group
sizes 16, 32, 64, 128 and 256, plain groups, zero-bitmap groups and the smaller of the two per
tensor ("best"); as a percentage of the uncompressed bytes. Weights are counted once per layer
(they are the same for every image, so the percentage is that of one image's traffic);
activations over the selected images. The paper's figures (off-chip traffic down to ~35 % of
uncompressed for 16-bit and ~33 % for 8-bit models) are printed beside the G=16 rows, with the
mean group precision and the zero fraction that explain the difference.

Network directories are read from ``$EFFECTUAL_DPRED_WORKLOADS`` (default
``build/dpred/workloads`` in the source tree) as ``<workload>-<bits>``; a missing one is imported
with ``effectual import <workload> --bits <bits> -o DIR`` (the Makefile's command; it needs the
``workloads`` extra), or reported as missing if that fails.

Throughput (`throughput_table`): `hw.dpred.DPRedEncoder` and `DPRedDecoder` simulated in
amaranth.sim without idle cycles or backpressure on the first activations of a real layer;
values per cycle = values / cycles from the first input transfer to the last output transfer
(the decoder's last output is its status beat), beside the port bound ``min(1, word_width /
compressed bits per value)`` and the same figure from the golden cycle models
(`golden.dpred.encoder_cycles`, `decoder_cycles`), which the simulation must equal.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np

__all__ = ["suite", "traffic_table", "throughput_table", "WORKLOADS", "GROUP_SIZES"]

WORKLOADS = ("blazeface-short", "blazeface-sparse", "lenet-digits")
BITS = (8, 16)
GROUP_SIZES = (16, 32, 64, 128, 256)
WORD_WIDTH = 32
PAPER = {16: 0.35, 8: 0.33}
#: images whose activations are counted (the first ones of each network)
IMAGES = 2


def _workload_dir(name, bits):
    root = pathlib.Path(os.environ.get(
        "EFFECTUAL_DPRED_WORKLOADS",
        pathlib.Path(__file__).resolve().parents[1] / "build" / "dpred" / "workloads"))
    directory = root / f"{name}-{bits}"
    if not (directory / "network.json").is_file():
        command = [sys.executable, "-m", "effectual.cli", "import", name, "--bits", str(bits),
                   "-o", str(directory)]
        print(f"importing {name} at {bits} bits: {' '.join(command[2:])}")
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"  could not import {name}-{bits}: {result.stderr.strip()[-300:]}")
            return None
    return directory


def _network_sizes(directory, images):
    """Return per group size: {part: {"uncompressed", "plain", "bitmap", "best"}} bytes, plus
    statistics (mean group precision and zero fraction at G=16)."""
    from golden.dpred import channel_minor, tensor_traffic
    from golden.layers import load_manifest, load_network
    from golden.precision import group_precision

    sums = {g: {part: dict.fromkeys(("uncompressed", "plain", "bitmap", "best"), 0)
                for part in ("weights", "activations")} for g in GROUP_SIZES}
    stats = {part: {"precision_sum": 0, "groups": 0, "zeros": 0, "values": 0, "bits": 0}
             for part in ("weights", "activations")}
    available = len(load_manifest(directory)["images"])
    manifest, layers = load_network(directory, images=list(range(min(images, available))))
    seen = set()
    for entry, image, layer in layers:
        tensors = [("activations", channel_minor(layer.activations, channel_axis=0),
                    layer.act_bits, layer.act_signed)]
        if entry["name"] not in seen:
            seen.add(entry["name"])
            tensors.append(("weights", channel_minor(layer.weights, channel_axis=1),
                            layer.weight_bits, True))
        for part, values, bits, signed in tensors:
            for g in GROUP_SIZES:
                t = tensor_traffic(values, value_width=bits, signed=signed, group_size=g,
                                   word_width=WORD_WIDTH)
                row = sums[g][part]
                row["uncompressed"] += t["uncompressed_bytes"]
                row["plain"] += t["plain_bytes"]
                row["bitmap"] += t["bitmap_bytes"]
                row["best"] += t["compressed_bytes"]
            padded = np.zeros(-(-values.size // 16) * 16, dtype=np.int64)
            padded[:values.size] = values
            widths, _ = group_precision(padded.reshape(-1, 16), value_width=bits, signed=signed)
            s = stats[part]
            s["precision_sum"] += int(widths.sum())
            s["groups"] += widths.size
            s["zeros"] += int((values == 0).sum())
            s["values"] += values.size
            s["bits"] = bits
    return manifest["name"], sums, stats


def _wide_container_ratio(directory, images, container_bits=16):
    """Return the G=16 best ratio of weights + activations when the network's codes are stored
    in ``container_bits``-bit words instead of their own width (the paper's 16-bit models:
    values that need far fewer bits than their container)."""
    from golden.dpred import channel_minor, tensor_traffic
    from golden.layers import load_network

    _, layers = load_network(directory, images=list(range(images)))
    compressed = uncompressed = 0
    seen = set()
    for entry, _, layer in layers:
        tensors = [(channel_minor(layer.activations, channel_axis=0), layer.act_signed)]
        if entry["name"] not in seen:
            seen.add(entry["name"])
            tensors.append((channel_minor(layer.weights, channel_axis=1), True))
        for values, signed in tensors:
            t = tensor_traffic(values, value_width=container_bits, signed=signed, group_size=16,
                               word_width=WORD_WIDTH)
            compressed += t["compressed_bytes"]
            uncompressed += t["uncompressed_bytes"]
    return compressed / uncompressed


def traffic_table(images=IMAGES):
    """Compute and print the traffic table; return its rows (JSON-able)."""
    rows, notes = [], []
    header = ("network", "bits", "G", "W plain", "W bitmap", "W best", "A plain", "A bitmap",
              "A best", "W+A best", "paper")
    lines = []
    for name in WORKLOADS:
        for bits in BITS:
            directory = _workload_dir(name, bits)
            if directory is None:
                notes.append(f"{name}-{bits}: missing")
                continue
            network, sums, stats = _network_sizes(directory, images)
            for g in GROUP_SIZES:
                w, a = sums[g]["weights"], sums[g]["activations"]
                total = (w["best"] + a["best"]) / (w["uncompressed"] + a["uncompressed"])
                row = {"network": name, "bits": bits, "group_size": g, "word_width": WORD_WIDTH,
                       "weights": w, "activations": a, "weights_and_activations_best": total}
                if g == 16:
                    row["statistics"] = {
                        part: {"mean_group_precision": s["precision_sum"] / max(s["groups"], 1),
                               "zero_fraction": s["zeros"] / max(s["values"], 1),
                               "value_width": s["bits"]}
                        for part, s in stats.items()}
                rows.append(row)
                pct = [f"{x / part['uncompressed']:.1%}" for part in (w, a)
                       for x in (part["plain"], part["bitmap"], part["best"])]
                lines.append((name, str(bits), str(g), *pct, f"{total:.1%}",
                              f"{PAPER[bits]:.0%}" if g == 16 else ""))
            s = stats
            if bits == 8:
                wide = _wide_container_ratio(directory, min(images, 1))
                rows[-1]["codes_in_16_bit_containers_best"] = wide
                notes.append(f"{name}-8 codes stored as 16-bit values (G=16, best, image 0): "
                             f"{wide:.1%} of 16-bit uncompressed")
            notes.append(
                f"{name}-{bits}: mean group precision (G=16) weights "
                f"{s['weights']['precision_sum'] / max(s['weights']['groups'], 1):.2f} of "
                f"{s['weights']['bits']} bits, activations "
                f"{s['activations']['precision_sum'] / max(s['activations']['groups'], 1):.2f}"
                f" of {s['activations']['bits']}; zeros: weights "
                f"{s['weights']['zeros'] / max(s['weights']['values'], 1):.1%}, activations "
                f"{s['activations']['zeros'] / max(s['activations']['values'], 1):.1%}")
    print(f"DPRed off-chip traffic, % of uncompressed ({WORD_WIDTH}-bit words; weights once per "
          f"layer, activations of the first {images} images)")
    print(_format(header, lines))
    for note in notes:
        print("  " + note)
    return rows


def _format(header, lines):
    widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                     for i, (cell, width) in enumerate(zip(line, widths))).rstrip()
           for line in [header] + lines]
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def _sample(name, bits, count):
    """Return ``(values, signed)``: the first ``count`` channel-minor input activations of the
    layer of network ``name-bits`` with the most values, or None if the network is missing."""
    from golden.dpred import channel_minor
    from golden.layers import load_network

    directory = _workload_dir(name, bits)
    if directory is None:
        return None
    _, layers = load_network(directory, images=0)
    best = max(layers, key=lambda item: item[2].activations.size)[2]
    return channel_minor(best.activations, channel_axis=0)[:count], best.act_signed


def simulate_throughput(params, values):
    """Simulate encoder and decoder without stalls; return ``(encoder, decoder)`` values per
    cycle and the golden words."""
    from amaranth.hdl import Module, Signal, Value
    from amaranth.sim import Simulator

    from golden.dpred import encode_words
    from hw.dpred import (DPRedDecoder, DPRedEncoder, length_layout, value_layout,
                          word_layout)

    words = encode_words(values, value_width=params.value_width, signed=params.signed,
                         group_size=params.group_size, word_width=params.word_width)
    kwargs = dict(group_size=params.group_size, value_width=params.value_width,
                  signed=params.signed, word_width=params.word_width,
                  length_width=params.length_width)

    def run(dut, inputs, in_stream, out_count, length=None):
        cycles = {"in": [], "out": []}

        async def source(ctx):
            if length is not None:
                ctx.set(dut.i_length.valid, 1)
                ctx.set(Value.cast(dut.i_length.payload), length)
            ctx.set(in_stream.valid, 1)
            for bits in inputs:
                ctx.set(Value.cast(in_stream.payload), bits)
                while True:
                    _, _, ready = await ctx.tick().sample(in_stream.ready)
                    if ready:
                        cycles["in"].append(ctx.get(counter))
                        break
                if length is not None:
                    ctx.set(dut.i_length.valid, 0)
            ctx.set(in_stream.valid, 0)

        async def sink(ctx):
            ctx.set(dut.o_stream.ready, 1)
            while len(cycles["out"]) < out_count:
                _, _, valid = await ctx.tick().sample(dut.o_stream.valid)
                if valid:
                    cycles["out"].append(ctx.get(counter))

        top = Module()
        top.submodules.dut = dut
        counter = Signal(32)
        top.d.sync += counter.eq(counter + 1)
        sim = Simulator(top)
        sim.add_clock(1e-6)
        sim.add_testbench(source)
        sim.add_testbench(sink)
        sim.run()
        return len(inputs), cycles["out"][-1] - cycles["in"][0] + 1

    encoder = DPRedEncoder(**kwargs)
    vl = value_layout(encoder.params)
    inputs = [vl.const({"value": int(v), "last": int(i == len(values) - 1)}).as_bits()
              for i, v in enumerate(values)]
    count, enc_cycles = run(encoder, inputs, encoder.i_stream, len(words))
    decoder = DPRedDecoder(**kwargs)
    wl = word_layout(decoder.params)
    word_inputs = [wl.const({"word": int(w), "last": int(i == len(words) - 1)}).as_bits()
                   for i, w in enumerate(words)]
    length = length_layout(decoder.params).const({"length": len(values)}).as_bits()
    _, dec_cycles = run(decoder, word_inputs, decoder.i_stream, len(values) + 1, length=length)
    return count / enc_cycles, len(values) / dec_cycles, words


def throughput_table(count=2048):
    """Simulate the codec on real activations; print and return the rows."""
    from hw.params import DPRedParams

    cases = [("lenet-digits", 8, 16, 32), ("blazeface-short", 8, 16, 32),
             ("blazeface-short", 16, 16, 32), ("blazeface-short", 16, 16, 16),
             ("blazeface-short", 16, 64, 64)]
    from golden.dpred import decoder_cycles, encoder_cycles

    header = ("data", "bits", "G", "word", "values", "bits/value", "port bound", "encoder",
              "decoder", "model enc", "model dec")
    lines, rows = [], []
    for name, bits, g, w in cases:
        sample = _sample(name, bits, count)
        if sample is None:
            continue
        values, signed = sample
        params = DPRedParams(group_size=g, value_width=bits, signed=signed, word_width=w)
        enc, dec, words = simulate_throughput(params, values)
        per_value = len(words) * w / len(values)
        bound = min(1.0, w / per_value)
        kwargs = dict(value_width=bits, signed=signed, group_size=g, word_width=w)
        first_in, last_out = encoder_cycles(values, **kwargs)
        model_enc = len(values) / (last_out[-1] - first_in[0] + 1)
        first_word, value_out = decoder_cycles(values, **kwargs)
        model_dec = len(values) / (value_out[-1] - first_word[0] + 1)
        rows.append({"data": name, "bits": bits, "group_size": g, "word_width": w,
                     "values": len(values), "bits_per_value": per_value, "port_bound": bound,
                     "encoder_values_per_cycle": enc, "decoder_values_per_cycle": dec,
                     "model_encoder_values_per_cycle": model_enc,
                     "model_decoder_values_per_cycle": model_dec})
        lines.append((name, str(bits), str(g), str(w), str(len(values)), f"{per_value:.2f}",
                      f"{bound:.3f}", f"{enc:.3f}", f"{dec:.3f}", f"{model_enc:.3f}",
                      f"{model_dec:.3f}"))
    print("\nDPRed encoder/decoder throughput (amaranth.sim, no idle, no backpressure), values "
          "per cycle")
    print(_format(header, lines))
    return rows


def suite(args):
    """The ``dpred`` suite: traffic table and codec throughput; returns both (JSON-able)."""
    return {"traffic": traffic_table(), "throughput": throughput_table()}
