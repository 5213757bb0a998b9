"""The ``tcle`` bench suite: Pragmatic and TCLe (term-serial back ends) on the BlazeFace workloads.

Networks: BlazeFace short range and full range sparse at 8 and 16 bits, read from
``build/workloads/<workload>-<bits>`` (imported there with ``effectual import <workload> --bits
<bits> -o DIR`` when missing), first image. For each network, whole-network sums over the layers:

* cycles of ``baseline`` and ``tclp`` (for reference) and of ``pragmatic`` and ``tcle`` with
  their defaults (16 x 16 tiles, W = act_bits columns in lock-step, DNNsim Booth terms, L1 = 2,
  T<2,5>), speedup over ``baseline``, ideal (terms only) cycles and achieved/ideal;
* the losses, each measured by switching it off in the model (`golden.pragmatic.loss_breakdown`):
  ``window`` = cycles lost to the first-stage shift window (cycles / cycles with the window off
  - 1), ``sync`` = cycles lost to synchronization (PEs of a column wait for the slowest, columns
  wait for each other: cycles / cycles with every PE running its rows back to back - 1);
* TCLe with NAF terms and with one row of column run-ahead, for comparison;
* the activation statistics behind the speedups: zero fraction and mean terms per non-zero
  activation under each encoding, and the mean of the bits a value would need.

The papers' headlines (Pragmatic 4.31x over DaDianNao at 16 bits, 2.25x with 8-bit activations)
are printed beside the Pragmatic rows.
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["suite", "NETWORKS", "network_dir", "evaluate"]

NETWORKS = (("blazeface-short", 8), ("blazeface-short", 16), ("blazeface-sparse", 8),
            ("blazeface-sparse", 16))
ROOT = Path("build") / "workloads"
PAPER_PRAGMATIC = {16: 4.31, 8: 2.25}


def network_dir(workload, bits, root=ROOT):
    """Return ``root/<workload>-<bits>``, importing the workload there if it is missing."""
    directory = Path(root) / f"{workload}-{bits}"
    if not (directory / "network.json").is_file():
        print(f"importing {workload} at {bits} bits into {directory} ...", flush=True)
        subprocess.run([sys.executable, "-m", "effectual.cli", "import", workload, "--bits",
                        str(bits), "-o", str(directory)], check=True, stdout=subprocess.DEVNULL)
    return directory


def evaluate(directory, *, image=0):
    """Return the whole-network figures of one image of the network in ``directory``."""
    from golden import designs, pragmatic
    from golden.layers import load_network
    from golden.terms import term_count

    _, items = load_network(directory, images=image)
    total = {}

    def add(key, value):
        total[key] = total.get(key, 0) + int(value)

    zeros = values = 0
    terms = {"booth": 0, "naf": 0, "binary": 0}
    bits = 0
    for _, _, layer in items:
        add("baseline", designs.get_design("baseline").cycles(layer))
        add("tclp", designs.get_design("tclp").cycles(layer))
        for design in ("pragmatic", "tcle"):
            for key, value in pragmatic.loss_breakdown(layer, design=design).items():
                add(f"{design}:{key}", value)
            add(f"{design}:naf", designs.get_design(design).cycles(layer, encoding="naf"))
        add("tcle:run_ahead1", designs.get_design("tcle").cycles(layer, run_ahead=1))
        acts = np.asarray(layer.activations).ravel()
        nonzero = acts[acts != 0]
        zeros += acts.size - nonzero.size
        values += acts.size
        for encoding in terms:
            terms[encoding] += int(term_count(nonzero, encoding=encoding,
                                              width=int(layer.act_bits)).sum())
        magnitude = np.abs(nonzero)
        bits += int(np.floor(np.log2(np.maximum(magnitude, 1))).sum() + magnitude.size)
    nonzero_count = max(1, values - zeros)
    total["zero_fraction"] = zeros / max(1, values)
    total["terms_per_nonzero"] = {e: t / nonzero_count for e, t in terms.items()}
    total["magnitude_bits_per_nonzero"] = bits / nonzero_count
    return total


def _row(name, bits, t):
    base = t["baseline"]
    out = {"network": f"{name}-{bits}", "baseline": base, "tclp": base / t["tclp"]}
    for design in ("pragmatic", "tcle"):
        cycles = t[f"{design}:cycles"]
        out[design] = {
            "cycles": cycles, "speedup": base / cycles,
            "ideal": t[f"{design}:ideal"], "achieved_over_ideal": t[f"{design}:ideal"] / cycles,
            "window_loss": cycles / t[f"{design}:no_window"] - 1,
            "sync_loss": cycles / t[f"{design}:no_sync"] - 1,
            "no_window_no_sync_speedup": base / t[f"{design}:no_window_no_sync"],
            "naf_speedup": base / t[f"{design}:naf"],
        }
    out["tcle"]["run_ahead1_speedup"] = base / t["tcle:run_ahead1"]
    out["zero_fraction"] = t["zero_fraction"]
    out["terms_per_nonzero"] = t["terms_per_nonzero"]
    out["magnitude_bits_per_nonzero"] = t["magnitude_bits_per_nonzero"]
    return out


def _table(rows):
    header = ("network", "design", "cycles", "speedup", "ach/ideal", "window loss",
              "sync loss", "no losses", "NAF", "paper")
    lines = []
    for r in rows:
        bits = int(r["network"].rsplit("-", 1)[1])
        for design in ("pragmatic", "tcle"):
            d = r[design]
            paper = f"{PAPER_PRAGMATIC[bits]:.2f}x" if design == "pragmatic" else ""
            lines.append((r["network"], design, f"{d['cycles']:,}", f"{d['speedup']:.2f}x",
                          f"{d['achieved_over_ideal']:.2f}", f"{100 * d['window_loss']:.1f}%",
                          f"{100 * d['sync_loss']:.1f}%",
                          f"{d['no_window_no_sync_speedup']:.2f}x", f"{d['naf_speedup']:.2f}x",
                          paper))
    widths = [max(len(x[i]) for x in [header] + lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                      for i, (c, w) in enumerate(zip(line, widths))).rstrip()
            for line in [header] + lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def suite(args):
    """Run the suite: print the tables, return the figures."""
    rows = []
    start = time.perf_counter()
    for name, bits in NETWORKS:
        directory = network_dir(name, bits)
        rows.append(_row(name, bits, evaluate(directory)))
    elapsed = time.perf_counter() - start
    print("Pragmatic and TCLe on one image (16 x 16 tiles, W = act_bits columns, lock-step, "
          "DNNsim Booth terms, L1 = 2, T<2,5>); speedup over the bit-parallel baseline")
    print(_table(rows))
    print()
    print("network              tclp   tcle run-ahead 1  zeros  terms/nonzero booth naf binary"
          "  bits/nonzero")
    for r in rows:
        t = r["terms_per_nonzero"]
        print(f"{r['network']:<20} {r['tclp']:.2f}x  {r['tcle']['run_ahead1_speedup']:.2f}x"
              f"            {100 * r['zero_fraction']:.0f}%   {t['booth']:.2f} {t['naf']:.2f} "
              f"{t['binary']:.2f}          {r['magnitude_bits_per_nonzero']:.2f}")
    print(f"\n(suite time {elapsed:.1f} s)")
    return {"networks": rows, "seconds": elapsed}
