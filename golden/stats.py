"""Value statistics of a layer and the work-bound potential speedups they expose.

Everything here is exact integer counting (numpy only); floats appear only in the final ratios.
A *layer* is a :class:`golden.layers.Layer` (any object with the same attributes works):
``kind`` (``"conv"``/``"fc"``), ``weights`` (conv ``[K, C/groups, R, S]``, fc ``[K, C]``),
``activations`` (conv ``[C, H, W]``, fc ``[C]``), ``stride`` ``(sh, sw)``, ``padding``
``(top, bottom, left, right)``, ``groups``, ``weight_bits``, ``act_bits``, ``act_signed``.
Weights are always signed (two's complement, symmetric quantization).

Groups (the unit of dynamic precision)
--------------------------------------
* Activations: ``group_size`` consecutive values along the channel axis at one pixel, i.e.
  consecutive values of the NHWC layout (channels ``c0 .. c0+G-1`` at ``(y, x)`` with ``c0`` a
  multiple of ``G``). An FC input ``[C]`` is cut into consecutive runs of ``G`` values.
* Weights: ``G`` consecutive input channels of one filter at one kernel position
  (``weights[k, c0:c0+G, r, s]``), the lanes a tile reads in one step. When a filter has a single
  input channel (``C/groups == 1``: depthwise, or a one-channel input), along the filter axis at
  one kernel position instead (``weights[k0:k0+G, 0, r, s]``, the channel axis of TFLite's
  ``[1, R, S, C]`` depthwise layout). FC: ``weights[k, c0:c0+G]``.
* Incomplete groups: when the axis length is not a multiple of ``G`` the last group of each run
  holds the remaining values; it counts as one group and its precision is that of the values it
  holds (the same as zero-padding it, because zeros never widen a group).
* ``act_grouping="flat"`` (an option of :func:`layer_stats`, default ``"pixel"``): for the
  per-tensor statistics ``act_group_width`` and ``act_group_magnitude`` only, the activation
  groups are instead consecutive runs of ``G`` values of the whole flattened NHWC tensor of one
  image (``[H, W, C]`` read in memory order, runs crossing pixel boundaries when ``C`` is not a
  multiple of ``G``; the last run holds the remaining ``H*W*C mod G`` values). This is the
  convention that reproduces ``shared/realdata.md``'s grpP. It equals ``"pixel"`` when ``C`` is
  a multiple of ``G`` and for FC layers. The work counts and potentials (``Ap``, ``W+Ap``) always
  use the per-pixel groups, which are the groups a tile reads.

Per-tensor statistics (over the stored tensors; padding is not part of them)
---------------------------------------------------------------------------
* ``zero_weights`` / ``zero_acts``: fraction of values equal to 0.
* ``act_group_width`` / ``weight_group_width``: mean over groups of
  :func:`golden.precision.group_precision` (minimal two's-complement width for signed data, the
  sign bit included; minimal unsigned width otherwise; an all-zero group is 1). Nominal maximum
  is the declared width (``act_bits``, ``weight_bits``).
* ``act_group_magnitude`` / ``weight_group_magnitude``: mean over groups of the bit length of the
  group's largest magnitude ``max |v|``, sign not counted, an all-zero group 0. This is the
  ``grpP`` of ``realdata.md`` (nominal 7 for symmetric signed 8-bit data).
* ``act_zero_bits`` / ``weight_zero_bits``: over the non-zero values only, the fraction of
  magnitude bits that are zero: ``1 - sum(popcount(|v|)) / (n_nonzero * m)`` with magnitude
  width ``m = bits - 1`` for signed and ``m = bits`` for unsigned data. (The one magnitude that
  does not fit ``m`` bits, ``|-2**(bits-1)|``, has popcount 1 like any power of two.)
* ``act_naf_terms`` / ``act_booth_terms`` (and ``weight_*``): mean number of non-zero digits per
  value in the canonical signed-digit form (NAF) and in DNNsim's Booth-like encoding
  (:func:`golden.terms.term_count`), over all values, zeros counting 0.

Work and potential speedups (Bit-Tactical's "which, why and how" analysis)
--------------------------------------------------------------------------
The work is counted per multiply-accumulate of the layer, exactly, over the im2col (patch) view:
a conv MAC is a tuple ``(k, c', r, s, oy, ox)`` (filter, channel within its group, kernel
position, output pixel) whose activation is the input at channel ``c = (k // (K/groups)) *
(C/groups) + c'`` and pixel ``(oy*sh + r - top, ox*sw + s - left)``; a pixel outside the image is
a padding zero, which is a zero activation of an all-zero group (width 1, 0 terms). An FC MAC is
``(k, c)``. ``macs`` counts every such tuple (``K * C/groups * R * S * OH * OW``, FC ``K * C``).
Instead of materializing the patches, each per-activation quantity is summed over the output
pixels once per ``(channel, kernel position)`` (one strided slice per kernel position) and the
sums are combined with the weights; the result equals the sum over all MAC tuples.

The bit-parallel baseline spends one MAC slot on every tuple, which in bit units is ``act_bits``
per MAC (``baseline_bits = macs * act_bits``). Each potential is baseline work / reduced work:

=========  ====================================================================================
``A``      value sparsity of activations: ``macs / #MACs whose activation is non-zero``
``W``      value sparsity of weights: ``macs / #MACs whose weight is non-zero``
``W+A``    skip a MAC when either operand is zero: ``macs / #MACs with both non-zero``
``Ap``     bit precision alone: ``baseline_bits / sum over MACs of the activation's group width``
           (the ``act_group_width`` groups; zero activations still cost their group's width)
``Ae_naf`` effectual terms alone: ``baseline_bits / sum over MACs of NAF terms of the activation``
``Ae_booth`` the same with DNNsim's Booth-like terms
``W+Ap``   skip zero weights, and the rest cost the activation group width:
           ``baseline_bits / sum over MACs with a non-zero weight of the group width``
``W+Ae``   skip zero weights, and the rest cost the activation's NAF terms
=========  ====================================================================================

A zero reduced work gives ``inf``. Network totals (:func:`network_stats`) add the work of all
layers (so potentials weight layers by their MACs: the ratio of total baseline work to total
reduced work), and average per-tensor statistics weighting each layer by its MACs; the pooled
alternative (every value or group of the network counted once) is reported too.
"""

import numpy as np

from golden.precision import bit_length, group_precision
from golden.terms import term_count
from hw.params import check_int

__all__ = ["STATISTICS", "POTENTIALS", "ACT_GROUPINGS", "layer_geometry", "activation_groups",
           "weight_groups", "layer_stats", "combine_images", "network_stats"]

#: the accepted ``act_grouping`` values: per-pixel channel groups, or runs of the flat tensor
ACT_GROUPINGS = ("pixel", "flat")

#: key -> (short header, description) of the per-tensor statistics, in table order.
STATISTICS = {
    "zero_weights": ("0 w", "fraction of weights that are zero"),
    "zero_acts": ("0 a", "fraction of activations that are zero"),
    "act_group_width": ("grpW a", "mean per-group minimal width of activations (bits): two's "
                                  "complement (sign bit included) if signed, unsigned otherwise"),
    "act_group_magnitude": ("grpP a", "mean per-group bit length of max |activation|, no sign"),
    "weight_group_width": ("grpW w", "mean per-group two's-complement width of weights (bits)"),
    "weight_group_magnitude": ("grpP w", "mean per-group bit length of max |weight|, no sign"),
    "act_zero_bits": ("0bit a", "fraction of zero magnitude bits in non-zero activations"),
    "weight_zero_bits": ("0bit w", "fraction of zero magnitude bits in non-zero weights"),
    "act_naf_terms": ("NAF a", "mean NAF terms per activation (zeros count 0)"),
    "act_booth_terms": ("Booth a", "mean Booth-like terms per activation (zeros count 0)"),
    "weight_naf_terms": ("NAF w", "mean NAF terms per weight (zeros count 0)"),
    "weight_booth_terms": ("Booth w", "mean Booth-like terms per weight (zeros count 0)"),
}

#: statistic -> (numerator count, denominator count); value = numerator / denominator.
_STAT_COUNTS = {
    "zero_weights": ("zero_weights", "weights"),
    "zero_acts": ("zero_acts", "acts"),
    "act_group_width": ("act_group_width_sum", "act_groups"),
    "act_group_magnitude": ("act_group_magnitude_sum", "act_groups"),
    "weight_group_width": ("weight_group_width_sum", "weight_groups"),
    "weight_group_magnitude": ("weight_group_magnitude_sum", "weight_groups"),
    "act_zero_bits": ("act_zero_bits", "act_nonzero_bits"),
    "weight_zero_bits": ("weight_zero_bits", "weight_nonzero_bits"),
    "act_naf_terms": ("act_naf_terms", "acts"),
    "act_booth_terms": ("act_booth_terms", "acts"),
    "weight_naf_terms": ("weight_naf_terms", "weights"),
    "weight_booth_terms": ("weight_booth_terms", "weights"),
}

#: key -> (description, baseline work key, reduced work key), in table order.
POTENTIALS = {
    "A": ("skip zero activations", "macs", "act_nonzero_macs"),
    "W": ("skip zero weights", "macs", "weight_nonzero_macs"),
    "W+A": ("skip a MAC when either operand is zero", "macs", "both_nonzero_macs"),
    "Ap": ("per-group dynamic activation precision", "baseline_bits", "act_width_bits"),
    "Ae_naf": ("activation NAF terms", "baseline_bits", "act_naf_terms"),
    "Ae_booth": ("activation Booth-like terms", "baseline_bits", "act_booth_terms"),
    "W+Ap": ("skip zero weights + dynamic activation precision", "baseline_bits",
             "weight_nonzero_act_width_bits"),
    "W+Ae": ("skip zero weights + activation NAF terms", "baseline_bits",
             "weight_nonzero_act_naf_terms"),
}


def _ratio(numerator, denominator):
    """Return ``numerator / denominator`` as a float; ``inf`` (or ``nan`` for 0/0) when zero."""
    if denominator == 0:
        return float("inf") if numerator else float("nan")
    return numerator / denominator


def layer_geometry(layer):
    """Return ``dict(K, C, Cg, Kg, R, S, H, W, OH, OW, groups)`` of a conv or FC layer.

    An FC layer is described as a 1x1 convolution over a 1x1 image (``R = S = H = W = OH = OW =
    1``). Raises ``ValueError`` for an unknown kind or inconsistent shapes.
    """
    weights, acts = np.asarray(layer.weights), np.asarray(layer.activations)
    if layer.kind == "fc":
        if weights.ndim != 2 or acts.ndim != 1 or weights.shape[1] != acts.shape[0]:
            raise ValueError(f"fc layer {layer.name!r}: weights {weights.shape} do not match "
                             f"activations {acts.shape}")
        K, C = weights.shape
        return dict(K=K, C=C, Cg=C, Kg=K, R=1, S=1, H=1, W=1, OH=1, OW=1, groups=1)
    if layer.kind != "conv":
        raise ValueError(f"layer {layer.name!r}: kind must be 'conv' or 'fc', not {layer.kind!r}")
    K, Cg, R, S = weights.shape
    C, H, W = acts.shape
    groups = int(layer.groups)
    if groups < 1 or C != Cg * groups or K % groups:
        raise ValueError(f"conv layer {layer.name!r}: weights {weights.shape} and groups "
                         f"{groups} do not match activations {acts.shape}")
    sh, sw = (int(v) for v in layer.stride)
    top, bottom, left, right = (int(v) for v in layer.padding)
    OH = (H + top + bottom - R) // sh + 1
    OW = (W + left + right - S) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"conv layer {layer.name!r}: kernel larger than the padded input")
    return dict(K=K, C=C, Cg=Cg, Kg=K // groups, R=R, S=S, H=H, W=W, OH=OH, OW=OW,
                groups=groups)


def _grouped_last_axis(values, group_size):
    """Zero-pad the last axis to a multiple of ``group_size`` and split it into groups."""
    n = values.shape[-1]
    pad = -n % group_size
    if pad:
        values = np.concatenate([values, np.zeros(values.shape[:-1] + (pad,), values.dtype)],
                                axis=-1)
    return values.reshape(values.shape[:-1] + (-1, group_size))


def _check_grouping(grouping, name="act_grouping"):
    if not isinstance(grouping, str) or grouping not in ACT_GROUPINGS:
        raise ValueError(f"{name} must be 'pixel' or 'flat', not {grouping!r}")
    return grouping


def activation_groups(layer, group_size=16, grouping="pixel"):
    """Return the activation groups as ``[..., group_size]`` (zero-padded incomplete groups).

    ``grouping="pixel"``: conv ``[H, W, ceil(C/G), G]`` (NHWC order); FC ``[ceil(C/G), G]``.
    ``grouping="flat"``: ``[ceil(H*W*C/G), G]``, runs of the flattened NHWC tensor (see the
    module docstring; FC as ``"pixel"``).
    """
    _check_grouping(grouping, "grouping")
    acts = np.asarray(layer.activations, dtype=np.int64)
    nhwc = np.moveaxis(acts, 0, -1) if layer.kind == "conv" else acts
    if grouping == "flat":
        nhwc = nhwc.reshape(-1)
    return _grouped_last_axis(nhwc, group_size)


def weight_groups(layer, group_size=16):
    """Return the weight groups as ``[..., group_size]`` (see the module docstring)."""
    weights = np.asarray(layer.weights, dtype=np.int64)
    if layer.kind == "fc":
        return _grouped_last_axis(weights, group_size)
    if weights.shape[1] == 1:
        return _grouped_last_axis(np.moveaxis(weights[:, 0], 0, -1), group_size)  # [R, S, K]
    return _grouped_last_axis(np.moveaxis(weights, 1, -1), group_size)  # [K, R, S, Cg]


def _group_width_and_magnitude(groups, *, bits, signed):
    """Return per-group ``(width, magnitude bit length)`` arrays over ``groups.shape[:-1]``."""
    width, _ = group_precision(groups, value_width=bits, signed=signed)
    magnitude = bit_length(np.abs(groups).max(axis=-1))
    return width, magnitude


def _value_counts(values, *, bits, signed, prefix):
    """Return the per-value counts (zeros, popcounts, terms) of one tensor, and the per-value
    NAF and Booth term counts (same shape as ``values``)."""
    nonzero = int(np.count_nonzero(values))
    popcount = int(term_count(values, encoding="binary", width=bits).sum())
    naf = term_count(values, encoding="naf", width=bits)
    booth = term_count(values, encoding="booth", width=bits)
    magnitude_width = bits - 1 if signed else bits
    return {
        f"{prefix}s": values.size,
        f"zero_{prefix}s": values.size - nonzero,
        f"{prefix}_zero_bits": nonzero * magnitude_width - popcount,
        f"{prefix}_nonzero_bits": nonzero * magnitude_width,
        f"{prefix}_naf_terms": int(naf.sum()),
        f"{prefix}_booth_terms": int(booth.sum()),
    }, naf, booth


def layer_stats(layer, *, group_size=16, act_grouping="pixel"):
    """Return the statistics, exact counts, work and potential speedups of one layer.

    Parameters
    ----------
    layer : golden.layers.Layer
    group_size : int, 1..256
        Values per precision group (see the module docstring).
    act_grouping : ``"pixel"`` (default) or ``"flat"``
        The activation groups of the ``act_group_width`` and ``act_group_magnitude`` statistics
        (see the module docstring); the work and potentials always use per-pixel groups.

    Returns
    -------
    dict with ``name``, ``kind``, ``macs``, ``act_bits``, ``weight_bits``, ``act_signed``,
    ``group_size``, ``act_grouping``, ``stats`` (the :data:`STATISTICS`, floats), ``counts``
    (the integer counts the statistics are ratios of), ``work`` (integer work of the baseline
    and of each reduced computation, keys named in :data:`POTENTIALS`) and ``potentials``
    (floats).
    """
    group_size = check_int("group_size", group_size, 1, 256)
    _check_grouping(act_grouping)
    geo = layer_geometry(layer)
    act_bits, weight_bits = int(layer.act_bits), int(layer.weight_bits)
    act_signed = bool(layer.act_signed)
    acts = np.asarray(layer.activations, dtype=np.int64)
    weights = np.asarray(layer.weights, dtype=np.int64)

    counts, act_naf, act_booth = _value_counts(acts, bits=act_bits, signed=act_signed,
                                               prefix="act")
    counts.update(_value_counts(weights, bits=weight_bits, signed=True, prefix="weight")[0])

    a_groups = activation_groups(layer, group_size)
    a_width, a_magnitude = _group_width_and_magnitude(a_groups, bits=act_bits, signed=act_signed)
    if act_grouping == "pixel" or layer.kind == "fc":
        s_width, s_magnitude = a_width, a_magnitude
    else:  # statistics only; a_width (per-pixel groups) stays the unit of the work below
        s_width, s_magnitude = _group_width_and_magnitude(
            activation_groups(layer, group_size, "flat"), bits=act_bits, signed=act_signed)
    w_width, w_magnitude = _group_width_and_magnitude(weight_groups(layer, group_size),
                                                      bits=weight_bits, signed=True)
    counts.update(act_groups=s_width.size, act_group_width_sum=int(s_width.sum()),
                  act_group_magnitude_sum=int(s_magnitude.sum()),
                  weight_groups=w_width.size, weight_group_width_sum=int(w_width.sum()),
                  weight_group_magnitude_sum=int(w_magnitude.sum()))

    # Per-activation quantities in the [C, H, W] (FC: [C]) layout, then their sums over every MAC
    # tuple that reads each (channel, kernel position).
    if layer.kind == "conv":
        per_group = np.moveaxis(np.repeat(a_width, group_size, axis=-1)[..., :geo["C"]], -1, 0)
    else:
        per_group = np.repeat(a_width, group_size)[:geo["C"]]
    quantities = np.stack([
        (acts != 0).astype(np.int64),
        per_group,
        act_naf,
        act_booth,
    ])
    padding_values = np.array([0, 1, 0, 0], dtype=np.int64)
    tap_sums = _tap_sums(quantities, padding_values, layer, geo)  # [Q, C, R, S]

    nonzero_w = (weights != 0).reshape(geo["K"], geo["Cg"], geo["R"], geo["S"])
    channel = (np.arange(geo["K"]) // geo["Kg"])[:, None] * geo["Cg"] + np.arange(geo["Cg"])
    joint = np.einsum("qkcrs,kcrs->q", tap_sums[:3, channel], nonzero_w.astype(np.int64))
    act_only = geo["Kg"] * tap_sums.sum(axis=(1, 2, 3))
    outputs = geo["OH"] * geo["OW"]
    macs = geo["K"] * geo["Cg"] * geo["R"] * geo["S"] * outputs
    work = {
        "macs": macs,
        "baseline_bits": macs * act_bits,
        "act_nonzero_macs": int(act_only[0]),
        "weight_nonzero_macs": int(np.count_nonzero(weights)) * outputs,
        "both_nonzero_macs": int(joint[0]),
        "act_width_bits": int(act_only[1]),
        "act_naf_terms": int(act_only[2]),
        "act_booth_terms": int(act_only[3]),
        "weight_nonzero_act_width_bits": int(joint[1]),
        "weight_nonzero_act_naf_terms": int(joint[2]),
    }
    return _finish({"name": str(layer.name), "kind": layer.kind, "images": 1, "macs": macs,
                    "act_bits": act_bits, "weight_bits": weight_bits, "act_signed": act_signed,
                    "group_size": group_size, "act_grouping": act_grouping}, counts, work)


def _finish(head, counts, work):
    """Return ``head`` completed with the counts, work and the ratios computed from them."""
    return dict(head, stats={key: _ratio(counts[num], counts[den])
                             for key, (num, den) in _STAT_COUNTS.items()},
                counts=counts, work=work,
                potentials={key: _ratio(work[num], work[den])
                            for key, (_, num, den) in POTENTIALS.items()})


def combine_images(results):
    """Return the statistics of one layer over several images from its per-image results.

    Counts and work are summed over the images (weights are counted once per image, which leaves
    their ratios unchanged), so every statistic and potential is that of all the images pooled;
    ``macs`` stays the per-image count and ``images`` is the number of images. The results must
    share name, kind, MACs, widths, group size and grouping (``ValueError`` otherwise).
    """
    results = list(results)
    if not results:
        raise ValueError("combine_images needs at least one result")
    keys = ("name", "kind", "macs", "act_bits", "weight_bits", "act_signed", "group_size",
            "act_grouping")
    first = results[0]
    for item in results[1:]:
        for key in keys:
            if item[key] != first[key]:
                raise ValueError(f"combine_images: {key} differs between images of layer "
                                 f"{first['name']!r} ({first[key]!r} vs {item[key]!r})")
    head = {key: first[key] for key in keys}
    head["images"] = sum(item["images"] for item in results)
    counts = {key: sum(item["counts"][key] for item in results) for key in first["counts"]}
    work = {key: sum(item["work"][key] for item in results) for key in first["work"]}
    return _finish(head, counts, work)


def _tap_sums(quantities, padding_values, layer, geo):
    """Sum per-activation ``quantities [Q, C, H, W]`` over the output pixels of each tap.

    Returns ``[Q, C, R, S]``: entry ``[q, c, r, s]`` is the sum over output pixels ``(oy, ox)`` of
    quantity ``q`` at channel ``c``, input pixel ``(oy*sh + r - top, ox*sw + s - left)``, where a
    pixel in the padding has value ``padding_values[q]``. FC: ``[Q, C, 1, 1]`` (the values).
    """
    if layer.kind == "fc":
        return quantities[:, :, None, None]
    top, bottom, left, right = (int(p) for p in layer.padding)
    sh, sw = (int(s) for s in layer.stride)
    Q, C, H, W = quantities.shape
    padded = np.empty((Q, C, H + top + bottom, W + left + right), dtype=np.int64)
    padded[...] = padding_values[:, None, None, None]
    padded[:, :, top:top + H, left:left + W] = quantities
    OH, OW = geo["OH"], geo["OW"]
    sums = np.empty((Q, C, geo["R"], geo["S"]), dtype=np.int64)
    for r in range(geo["R"]):
        rows = padded[:, :, r:r + sh * (OH - 1) + 1:sh].sum(axis=2)  # [Q, C, Wp], all oy
        for s in range(geo["S"]):
            sums[:, :, r, s] = rows[:, :, s:s + sw * (OW - 1) + 1:sw].sum(axis=2)
    return sums


def network_stats(layers):
    """Return the network totals of a list of :func:`layer_stats` results.

    Returns a dict with ``layers`` (count), ``macs``, ``work`` and ``counts`` (sums over layers),
    ``potentials`` (ratios of the summed work, i.e. weighted by MACs), ``stats`` (per-tensor
    statistics averaged with each layer weighted by its MACs) and ``pooled_stats`` (ratios of the
    summed counts: every value or group of the network weighted equally).
    Raises ``ValueError`` for an empty list.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("network_stats needs at least one layer")
    macs = sum(item["macs"] for item in layers)
    work = {key: sum(item["work"][key] for item in layers) for key in layers[0]["work"]}
    counts = {key: sum(item["counts"][key] for item in layers) for key in layers[0]["counts"]}
    stats = {}
    for key in STATISTICS:
        pairs = [(item["macs"], item["stats"][key]) for item in layers
                 if not np.isnan(item["stats"][key])]
        weight = sum(m for m, _ in pairs)
        stats[key] = sum(m * v for m, v in pairs) / weight if weight else float("nan")
    return {
        "layers": len(layers), "macs": macs, "work": work, "counts": counts,
        "potentials": {key: _ratio(work[num], work[den])
                       for key, (_, num, den) in POTENTIALS.items()},
        "stats": stats,
        "pooled_stats": {key: _ratio(counts[num], counts[den])
                         for key, (num, den) in _STAT_COUNTS.items()},
    }
