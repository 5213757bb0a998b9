"""Built-in real workloads: trained networks on real images, each one ``effectual import`` away.

========================  ==========================================================================
name                      network and inputs
========================  ==========================================================================
``blazeface-short``       MediaPipe BlazeFace short range (``face_detection_short_range.tflite``,
                          128x128 input, 37 conv layers, fp16 weights), from the mediapipe 0.10.14
                          wheel, on the six `DEFAULT_PHOTOS`
``blazeface-sparse``      MediaPipe BlazeFace full range sparse
                          (``face_detection_full_range_sparse.tflite``, 192x192, 91 conv layers,
                          every 1x1 conv shipped 70 % pruned), on the same photos
``lenet-digits``          a LeNet-like CNN (3 conv + 2 FC) trained here with torch on scikit-learn's
                          ``load_digits`` (8x8 grey digits), on 10 held-out test digits
``lenet-digits-pruned``   the same network magnitude-pruned to 90 % zero weights in every layer and
                          fine-tuned with the pruning masks, on the same digits
========================  ==========================================================================

Photos (`DEFAULT_PHOTOS`), all shipped inside wheels, no download: scikit-image ``astronaut``,
``coffee`` and ``chelsea``; scikit-learn ``china.jpg`` and ``flower.jpg``; matplotlib
``grace_hopper.jpg``. Preprocessing for BlazeFace (`prepare_photo`): centre crop to a square,
bilinear resize with anti-aliasing (``skimage.transform.resize(order=1)``) to the model input
(128x128 or 192x192), RGB values mapped from [0, 255] to [-1, 1] (``x / 127.5 - 1``), as MediaPipe
feeds these models. Each BlazeFace run prints the best face score per photo (sigmoid of the
model's classifier output), a check that the real model sees real faces.

LeNet (`train_lenet`): digits scaled to [0, 1] (``pixel / 16``); a stratified 75/25 train/test
split (``random_state=0``); Adam, batch 64, fixed seeds, one CPU thread and
``torch.use_deterministic_algorithms``, so the weights are the same on every run with the same
torch version (a few seconds on one core). The pruned network removes the 90 % smallest-magnitude
weights of each layer at once (biases kept), then fine-tunes with the masks re-applied after every
step. Test accuracies are printed and written to the manifest's ``extra``. Captured inputs: the
first test-split digit of each class 0-9.

Trained weights are cached in ``$EFFECTUAL_CACHE_DIR`` (default ``$XDG_CACHE_HOME/effectual``,
which the ``effectual`` command and the tests point at the source tree's ``.cache/effectual``)
under a name that includes a hash of the training configuration and the torch version; a second
import skips the training (about 3 s instead of 11 s). To retrain, delete the cached
``lenet-digits-*.npz`` files or set ``EFFECTUAL_RETRAIN=1``.

Each workload is a callable ``WORKLOADS[name](inputs, *, input_range=None, layout=None)`` that
returns an ``effectual.importers.common.Capture``; ``inputs`` (paths given with ``--input``)
replace the default images when not empty (then read by ``importers.common.load_inputs``:
plain bilinear resize without crop, [0, 1] mapped to ``input_range``, default [-1, 1] for
BlazeFace and [0, 1] for LeNet, whose input is one grey 8x8 channel). The optional packages
(the ``workloads`` extra plus ``pip install --no-deps mediapipe==0.10.14``) are imported only
when a workload runs; a missing one is a one-line `effectual.cli.UsageError` naming what to
install.
"""

import hashlib
import importlib
import importlib.util
import json
import os

import numpy as np

__all__ = ["WORKLOADS", "DESCRIPTIONS", "DEFAULT_PHOTOS", "BLAZEFACE_MODELS", "LENET_CONFIG",
           "blazeface_short", "blazeface_sparse", "lenet_digits", "lenet_digits_pruned",
           "prepare_photo", "load_photo", "mediapipe_model_path", "train_lenet",
           "lenet_capture", "cache_dir", "require"]

#: how to install each optional package a workload needs (module -> pip command)
INSTALL_HINTS = {
    "ai_edge_litert": "pip install -e '.[workloads]'",
    "sklearn": "pip install -e '.[workloads]'",
    "skimage": "pip install -e '.[workloads]'",
    "torch": "pip install -e '.[workloads]' (torch==2.13.0, the CPU build)",
    "mediapipe": "pip install --no-deps mediapipe==0.10.14",
}

#: photo name -> (source shown in the manifest, loader spec)
DEFAULT_PHOTOS = {
    "astronaut": "scikit-image skimage.data.astronaut()",
    "coffee": "scikit-image skimage.data.coffee()",
    "chelsea": "scikit-image skimage.data.chelsea()",
    "china": "scikit-learn sklearn.datasets.load_sample_image('china.jpg')",
    "flower": "scikit-learn sklearn.datasets.load_sample_image('flower.jpg')",
    "grace_hopper": "matplotlib cbook.get_sample_data('grace_hopper.jpg')",
}

#: workload -> model file inside the mediapipe package
BLAZEFACE_MODELS = {
    "blazeface-short": "modules/face_detection/face_detection_short_range.tflite",
    "blazeface-sparse": "modules/face_detection/face_detection_full_range_sparse.tflite",
}

#: LeNet training configuration (part of the cache key: change it and the cache is retrained)
LENET_CONFIG = {
    "version": 1, "test_size": 0.25, "split_seed": 0, "torch_seed": 0, "batch": 64,
    "epochs": 30, "lr": 3e-3, "prune_fraction": 0.9, "prune_epochs": 30, "prune_lr": 3e-3,
}


def require(module, workload):
    """Import and return ``module``; if it is missing, raise a one-line UsageError."""
    try:
        return importlib.import_module(module)
    except ImportError:
        from effectual.cli import UsageError
        raise UsageError(f"workload {workload} needs {module.split('.')[0]}, from the workloads "
                         f"extra: {INSTALL_HINTS[module.split('.')[0]]}") from None


def cache_dir():
    """Return the directory for cached trained weights (not created)."""
    if os.environ.get("EFFECTUAL_CACHE_DIR"):
        return os.environ["EFFECTUAL_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "effectual")


# --- BlazeFace --------------------------------------------------------------------------------

def mediapipe_model_path(workload):
    """Return the path of the BlazeFace ``.tflite`` file of ``workload`` in the mediapipe wheel."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError):  # ValueError: a module object without __spec__
        spec = None
    if spec is None or not spec.submodule_search_locations:
        require("mediapipe", workload)  # raises the install hint
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, BLAZEFACE_MODELS[workload])
    if not os.path.isfile(path):
        raise OSError(f"{path}: missing from the mediapipe package; workload {workload} needs "
                      f"{INSTALL_HINTS['mediapipe']}")
    return path


def load_photo(name, workload="blazeface"):
    """Return the default photo ``name`` as a uint8 RGB array ``[H, W, 3]``."""
    if name in ("astronaut", "coffee", "chelsea"):
        data = require("skimage.data", workload)
        return np.asarray(getattr(data, name)())
    if name in ("china", "flower"):
        datasets = require("sklearn.datasets", workload)
        return np.asarray(datasets.load_sample_image(f"{name}.jpg"))
    if name == "grace_hopper":
        from matplotlib import cbook, image
        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            return np.asarray(image.imread(handle, format="jpg"))
    raise ValueError(f"photo must be one of {', '.join(DEFAULT_PHOTOS)}, not {name!r}")


def prepare_photo(photo, *, size, workload="blazeface"):
    """Centre-crop ``photo`` (uint8 RGB) to a square, resize to ``size`` x ``size``, map to [-1, 1].

    Returns float32 ``[1, size, size, 3]`` (NHWC, batch 1), the BlazeFace input.
    """
    transform = require("skimage.transform", workload)
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be uint8 RGB [H, W, 3], not {photo.dtype} "
                         f"{list(photo.shape)}")
    height, width = photo.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = photo[top:top + side, left:left + side].astype(np.float64)
    resized = transform.resize(square, (size, size), order=1, anti_aliasing=True,
                               preserve_range=True)
    return (resized / 127.5 - 1.0).astype(np.float32)[None]


def _blazeface(workload, inputs, input_range, layout):
    from effectual.importers import tflite_import
    require("ai_edge_litert", workload)
    path = mediapipe_model_path(workload)
    size = 128 if workload == "blazeface-short" else 192
    if input_range is None:
        input_range = tflite_import.DEFAULT_INPUT_RANGE
    if layout not in (None, "nhwc"):
        raise ValueError(f"{workload} takes an NHWC input; --layout {layout} does not apply")
    if inputs:
        from effectual.importers.common import load_inputs
        images = load_inputs(list(inputs), shape=[1, size, size, 3], layout="nhwc",
                             input_range=input_range)
        info = [{"name": os.path.splitext(os.path.basename(os.fspath(p)))[0],
                 "source": os.fspath(p)} for p in inputs]
    else:
        if tuple(input_range) != tuple(tflite_import.DEFAULT_INPUT_RANGE):
            raise ValueError(f"{workload} default photos are prepared for input range [-1, 1]; "
                             f"--input-range applies only with --input")
        images = [prepare_photo(load_photo(name, workload), size=size, workload=workload)
                  for name in DEFAULT_PHOTOS]
        info = [{"name": name, "source": source} for name, source in DEFAULT_PHOTOS.items()]
    scores = {}

    def face_score(interpreter, index):
        outputs = interpreter.get_output_details()
        logits = min(outputs, key=lambda d: int(d["shape"][-1]))      # [1, anchors, 1]
        best = float(np.max(interpreter.get_tensor(logits["index"])))
        scores[info[index]["name"]] = round(1.0 / (1.0 + np.exp(-best)), 4)
        print(f"{workload}: {info[index]['name']}: best face score "
              f"{scores[info[index]['name']]:.2f}")

    return tflite_import.capture_tflite(
        path, images, image_info=info, name=workload, input_range=input_range,
        source=f"mediapipe 0.10.14 {BLAZEFACE_MODELS[workload]}",
        extra={"preprocessing": "centre crop to square, bilinear resize, x/127.5-1"
               if not inputs else "importers.common.load_inputs", "face_scores": scores},
        after_invoke=face_score)


def blazeface_short(inputs=(), *, input_range=None, layout=None):
    """BlazeFace short range (128x128) on the default photos or ``inputs``; returns a Capture."""
    return _blazeface("blazeface-short", inputs, input_range, layout)


def blazeface_sparse(inputs=(), *, input_range=None, layout=None):
    """BlazeFace full range sparse (192x192) on the default photos or ``inputs``; a Capture."""
    return _blazeface("blazeface-sparse", inputs, input_range, layout)


# --- LeNet on scikit-learn digits -------------------------------------------------------------

#: LeNet layers in order: (name, which is also the torch module attribute, kind)
LENET_LAYERS = (("conv1", "conv"), ("conv2", "conv"), ("conv3", "conv"), ("fc1", "fc"),
                ("fc2", "fc"))


def _digits(workload, config):
    """Return ``(x_train, x_test, y_train, y_test, test_indices)``, x float32 [N, 1, 8, 8]."""
    datasets = require("sklearn.datasets", workload)
    selection = require("sklearn.model_selection", workload)
    digits = datasets.load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    indices = np.arange(len(x))
    x_train, x_test, y_train, y_test, _, test_indices = selection.train_test_split(
        x, digits.target, indices, test_size=config["test_size"],
        random_state=config["split_seed"], stratify=digits.target)
    return x_train, x_test, y_train, y_test, test_indices


def _lenet_module(torch):
    nn, functional = torch.nn, torch.nn.functional

    class LeNet(nn.Module):
        """conv3x3(1->16) relu, conv3x3(16->32) relu pool2, conv3x3(32->32) relu pool2,
        fc(128->64) relu, fc(64->10); all convs padded by 1."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
            self.fc1 = nn.Linear(128, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            x = functional.relu(self.conv1(x))
            x = functional.max_pool2d(functional.relu(self.conv2(x)), 2)
            x = functional.max_pool2d(functional.relu(self.conv3(x)), 2)
            x = functional.relu(self.fc1(x.flatten(1)))
            return self.fc2(x)

    return LeNet()


def _train(torch, model, x, y, *, epochs, lr, batch, seed, masks=None):
    functional = torch.nn.functional
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order), batch):
            chosen = order[start:start + batch]
            optimizer.zero_grad()
            functional.cross_entropy(model(x[chosen]), y[chosen]).backward()
            optimizer.step()
            if masks is not None:
                with torch.no_grad():
                    for name, mask in masks.items():
                        getattr(model, name).weight.mul_(mask)


def _accuracy(torch, model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def _state(model):
    state = {}
    for name, _ in LENET_LAYERS:
        module = getattr(model, name)
        state[f"{name}.weight"] = module.weight.detach().numpy().copy()
        state[f"{name}.bias"] = module.bias.detach().numpy().copy()
    return state


def _cache_path(config, torch_version, directory):
    key = json.dumps({"config": config, "torch": torch_version}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(directory, f"lenet-digits-{digest}.npz")


def train_lenet(*, config=None, cache=None, retrain=None, workload="lenet-digits", log=print):
    """Train (or load from the cache) the dense and the pruned LeNet on scikit-learn digits.

    Parameters
    ----------
    config : dict, optional
        Overrides of `LENET_CONFIG` (e.g. ``{"epochs": 1}`` for a quick test).
    cache : str or False, optional
        Cache directory (default `cache_dir()`); ``False`` disables the cache.
    retrain : bool, optional
        Ignore a cached result (default: true when ``EFFECTUAL_RETRAIN=1``).
    log : callable
        Receives the accuracy and cache lines.

    Returns
    -------
    dict with ``dense`` and ``pruned`` (each ``{"conv1.weight": float32 array, ...}``),
    ``dense_accuracy``, ``pruned_accuracy`` (held-out test split), ``config``, ``cached``
    (whether loaded from the cache) and ``path`` (cache file or None).
    """
    torch = require("torch", workload)
    config = {**LENET_CONFIG, **(config or {})}
    if retrain is None:
        retrain = os.environ.get("EFFECTUAL_RETRAIN", "") not in ("", "0")
    directory = cache_dir() if cache is None else cache
    path = _cache_path(config, torch.__version__, directory) if directory else None
    if path and not retrain and os.path.isfile(path):
        with np.load(path, allow_pickle=False) as data:
            result = {"dense": {}, "pruned": {}}
            for key in data.files:
                if key.startswith(("dense/", "pruned/")):
                    group, name = key.split("/", 1)
                    result[group][name] = data[key]
            result["dense_accuracy"] = float(data["dense_accuracy"])
            result["pruned_accuracy"] = float(data["pruned_accuracy"])
        log(f"{workload}: loaded trained weights from {path} (EFFECTUAL_RETRAIN=1 retrains)")
        return {**result, "config": config, "cached": True, "path": path}
    x_train, x_test, y_train, y_test, _ = _digits(workload, config)
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(config["torch_seed"])
        model = _lenet_module(torch)
        x_train_t, y_train_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
        x_test_t, y_test_t = torch.from_numpy(x_test), torch.from_numpy(y_test)
        _train(torch, model, x_train_t, y_train_t, epochs=config["epochs"], lr=config["lr"],
               batch=config["batch"], seed=config["torch_seed"] + 1)
        dense = _state(model)
        dense_accuracy = _accuracy(torch, model, x_test_t, y_test_t)
        masks = {}
        for name, _ in LENET_LAYERS:
            weight = getattr(model, name).weight.detach()
            count = int(round(config["prune_fraction"] * weight.numel()))
            magnitude = weight.abs().flatten()
            order = torch.argsort(magnitude, stable=True)
            mask = torch.ones_like(magnitude)
            mask[order[:count]] = 0.0
            masks[name] = mask.reshape(weight.shape)
        with torch.no_grad():
            for name, mask in masks.items():
                getattr(model, name).weight.mul_(mask)
        _train(torch, model, x_train_t, y_train_t, epochs=config["prune_epochs"],
               lr=config["prune_lr"], batch=config["batch"], seed=config["torch_seed"] + 2,
               masks=masks)
        pruned = _state(model)
        pruned_accuracy = _accuracy(torch, model, x_test_t, y_test_t)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    log(f"{workload}: trained on {len(x_train)} digits; held-out accuracy dense "
        f"{100 * dense_accuracy:.1f} %, pruned {100 * pruned_accuracy:.1f} % ({len(x_test)} "
        f"test digits)")
    if path:
        os.makedirs(directory, exist_ok=True)
        arrays = {f"dense/{k}": v for k, v in dense.items()}
        arrays.update({f"pruned/{k}": v for k, v in pruned.items()})
        temporary = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(temporary, dense_accuracy=dense_accuracy, pruned_accuracy=pruned_accuracy,
                 config=json.dumps(config), **arrays)
        os.replace(temporary, path)
        log(f"{workload}: cached trained weights in {path}")
    return {"dense": dense, "pruned": pruned, "dense_accuracy": dense_accuracy,
            "pruned_accuracy": pruned_accuracy, "config": config, "cached": False, "path": path}


def lenet_capture(state, images, *, image_info, name, extra, workload="lenet-digits"):
    """Run the LeNet with weights ``state`` on ``images`` [N, 1, 8, 8]; return a Capture.

    Each layer's input is captured by a forward pre-hook (conv1: the digit itself; conv2: ReLU of
    conv1; conv3: pooled ReLU of conv2; fc1: the flattened pooled ReLU of conv3; fc2: ReLU of
    fc1). Weights are torch's own OIHW / [K, C] layout.
    """
    from effectual.importers.common import Capture, CapturedLayer
    torch = require("torch", workload)
    model = _lenet_module(torch)
    model.load_state_dict({key: torch.from_numpy(np.asarray(value, dtype=np.float32))
                           for key, value in state.items()})
    model.eval()
    inputs = {}
    hooks = [getattr(model, layer).register_forward_pre_hook(
        lambda module, args, layer=layer: inputs.__setitem__(layer, args[0].detach().numpy()))
        for layer, _ in LENET_LAYERS]
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.asarray(images, dtype=np.float32))).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    layers = []
    for layer, kind in LENET_LAYERS:
        conv = kind == "conv"
        layers.append(CapturedLayer(
            name=layer, kind=kind, weights=np.asarray(state[f"{layer}.weight"]),
            activations=inputs[layer].copy(), stride=(1, 1),
            padding=(1, 1, 1, 1) if conv else (0, 0, 0, 0), groups=1,
            op_type="Conv2d" if conv else "Linear", bias=np.asarray(state[f"{layer}.bias"])))
    extra = dict(extra, predictions=[int(p) for p in logits.argmax(1)])
    return Capture(name=name, source="trained here: effectual.workloads.train_lenet on "
                   "sklearn load_digits", layers=layers, images=image_info, extra=extra)


def _lenet(workload, inputs, input_range, layout):
    require("torch", workload)
    trained = train_lenet(workload=workload)
    pruned = workload.endswith("-pruned")
    state = trained["pruned" if pruned else "dense"]
    weights = [state[f"{layer}.weight"] for layer, _ in LENET_LAYERS]
    zero_fraction = float(sum(int(np.sum(w == 0)) for w in weights) / sum(w.size for w in weights))
    accuracy = trained["pruned_accuracy" if pruned else "dense_accuracy"]
    print(f"{workload}: held-out test accuracy {100 * accuracy:.1f} %, "
          f"{100 * zero_fraction:.1f} % zero weights (float)")
    if layout not in (None, "nchw"):
        raise ValueError(f"{workload} takes an NCHW input; --layout {layout} does not apply")
    if inputs:
        from effectual.importers.common import load_inputs
        images = np.concatenate(load_inputs(list(inputs), shape=[1, 1, 8, 8], layout="nchw",
                                            input_range=input_range or (0.0, 1.0)))
        info = [{"name": os.path.splitext(os.path.basename(os.fspath(p)))[0],
                 "source": os.fspath(p)} for p in inputs]
    else:
        _, x_test, _, y_test, test_indices = _digits(workload, trained["config"])
        chosen = [int(np.flatnonzero(y_test == digit)[0]) for digit in range(10)]
        images = x_test[chosen]
        info = [{"name": f"digit{digit}_sample{int(test_indices[i])}",
                 "source": f"sklearn load_digits() sample {int(test_indices[i])} (test split), "
                           f"label {digit}"} for digit, i in enumerate(chosen)]
    extra = {"accuracy": accuracy, "dense_accuracy": trained["dense_accuracy"],
             "pruned_accuracy": trained["pruned_accuracy"], "zero_weight_fraction": zero_fraction,
             "pruned": pruned, "training": trained["config"],
             "input_range": [float(v) for v in (input_range or (0.0, 1.0))]}
    return lenet_capture(state, images, image_info=info, name=workload, extra=extra,
                         workload=workload)


def lenet_digits(inputs=(), *, input_range=None, layout=None):
    """The dense LeNet on 10 held-out digits (or ``inputs``); returns a Capture."""
    return _lenet("lenet-digits", inputs, input_range, layout)


def lenet_digits_pruned(inputs=(), *, input_range=None, layout=None):
    """The 90 %-pruned, fine-tuned LeNet on 10 held-out digits (or ``inputs``); a Capture."""
    return _lenet("lenet-digits-pruned", inputs, input_range, layout)


#: workload name -> callable(inputs, *, input_range=None, layout=None) -> Capture
WORKLOADS = {
    "blazeface-short": blazeface_short,
    "blazeface-sparse": blazeface_sparse,
    "lenet-digits": lenet_digits,
    "lenet-digits-pruned": lenet_digits_pruned,
}

#: workload name -> one-line description (for --help and the report)
DESCRIPTIONS = {
    "blazeface-short": "MediaPipe BlazeFace short range (128x128, TFLite) on 6 photos",
    "blazeface-sparse": "MediaPipe BlazeFace full range sparse (192x192, TFLite) on 6 photos",
    "lenet-digits": "LeNet-like CNN trained here on sklearn digits, 10 test digits",
    "lenet-digits-pruned": "same LeNet, 90 % magnitude-pruned and fine-tuned, 10 test digits",
}
