#!/usr/bin/env python3
"""Build hltinfer's bundled example model repository (models/) deterministically.

Run with the project's virtual environment, from any working directory:

    /work/main/.venv/bin/python models/generate.py

It writes, next to this script:

    facile/config.json            partial config (input/output auto-completed by the server)
    facile/1/model.onnx           Gemm(transB=1) + BatchNormalization + Relu MLP, input [N, 15]
    facile/reference/*.json,*.bin reference vectors (N = 1, 7, 16000)
    jet_tagger/config.json        complete config
    jet_tagger/1/model.onnx       MatMul + Add + Relu MLP + Softmax, input [batch, 64]
    jet_tagger/reference/...      reference vectors (batch = 1, 3, 64)

Weights and inputs come from fixed numpy seeds; no network, no torch.  Reference
outputs are computed in float64 numpy from the float32 weights and stored cast to
float32; onnxruntime (CPUExecutionProvider) must agree with them to
rtol 1e-5 / atol 1e-6 (atol scaled by the tensor's max |value| when that is
above 1, see compare()) or the script fails.  Re-running it reproduces every file
byte for byte.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent

OPSET = 13
IR_VERSION = 8
PRODUCER = "hltinfer models/generate.py"
PRODUCER_VERSION = "1"

RTOL = 1e-5
ATOL = 1e-6


# --------------------------------------------------------------------------- helpers


def glorot_uniform(rng, fan_in, fan_out, gain=1.0):
    """Glorot/Xavier uniform weights, shape [fan_in, fan_out], float32."""
    limit = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def small_bias(rng, n, scale=0.05):
    return (rng.standard_normal(n) * scale).astype(np.float32)


def init(name, array):
    """Initializer stored as raw_data (what the PyTorch exporter writes)."""
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def f32_tensor(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def finish_model(graph, doc):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def check_shape_inference(model, expected_outputs):
    """Strict shape inference must succeed and reproduce the declared output shapes."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    onnx.checker.check_model(inferred, full_check=True)
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for name, dims in expected_outputs.items():
        vi = known[name]
        got = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in vi.type.tensor_type.shape.dim]
        assert got == dims, f"shape inference: {name} is {got}, expected {dims}"
    # every intermediate tensor must have a fully inferred rank-2 shape
    for vi in inferred.graph.value_info:
        assert len(vi.type.tensor_type.shape.dim) == 2, f"shape inference left {vi.name} unranked"


def write_bytes(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_json(path, obj):
    text = json.dumps(obj, indent=2, ensure_ascii=True) + "\n"
    write_bytes(path, text.encode("ascii"))


def run_onnxruntime(model_bytes, feeds, output_names):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, sess_options=so, providers=["CPUExecutionProvider"])
    return dict(zip(output_names, sess.run(output_names, feeds)))


def write_reference(model_dir, case, inputs, outputs):
    """inputs/outputs: list of (name, float32 ndarray). Writes <case>.json + <case>.<name>.bin."""
    ref = model_dir / "reference"

    def entries(tensors):
        out = []
        for name, arr in tensors:
            arr = np.ascontiguousarray(arr, dtype="<f4")
            fname = f"{case}.{name}.bin"
            write_bytes(ref / fname, arr.tobytes(order="C"))
            out.append({"name": name, "datatype": "FP32", "shape": list(arr.shape), "file": fname})
        return out

    write_json(ref / f"{case}.json", {"inputs": entries(inputs), "outputs": entries(outputs)})


def compare(model_name, case, name, ort_value, ref64):
    """Element-wise |ort - ref| <= ATOL * S + RTOL * |ref|, with S = max(1, max |ref|).

    ATOL is taken relative to the tensor's own scale S because float32 round-off
    in an O(1) tensor computed through 36- to 128-wide dot products is itself
    ~1e-6 absolute: an element that happens to land near zero (a logit of -0.04)
    carries the round-off of its O(1) partial sums, not of its own value.  For
    tensors with max |ref| <= 1 (facile at small N, the probabilities) this is
    exactly rtol 1e-5 / atol 1e-6.
    """
    ort_value = np.asarray(ort_value, dtype=np.float64)
    assert ort_value.shape == ref64.shape, (model_name, case, name, ort_value.shape, ref64.shape)
    scale = max(1.0, float(np.abs(ref64).max()))
    err = np.abs(ort_value - ref64)
    excess = err - (ATOL * scale + RTOL * np.abs(ref64))
    if np.any(excess > 0):
        worst = np.unravel_index(np.argmax(excess), err.shape)
        raise AssertionError(
            f"{model_name}/{case}/{name}: onnxruntime vs float64 numpy differ; worst at {worst}: "
            f"ort={ort_value[worst]!r} ref={ref64[worst]!r} (tensor scale {scale:.3g})"
        )
    return float(err.max()), scale


def clean_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


# --------------------------------------------------------------------------- FACILE


FACILE_FEATURES = 15
FACILE_HIDDEN = 36
FACILE_EPS = 1e-5
FACILE_MAX_BATCH = 16000  # one event: 16,000 HCAL channels in one request
FACILE_CASES = [1, 7, 16000]


def facile_weights(rng):
    """Dense(15->36)+BN+ReLU, Dense(36->36)+BN+ReLU, Dense(36->1).

    BatchNorm running statistics are taken from the actual pre-activation
    distribution on a calibration sample and then perturbed, the way a trained
    network's running stats look: roughly centred, so ReLU keeps about half of
    the units active and nothing saturates.
    """
    calib = rng.standard_normal((4096, FACILE_FEATURES)).astype(np.float32)
    w = {}
    h = calib.astype(np.float64)
    sizes = [(FACILE_FEATURES, FACILE_HIDDEN), (FACILE_HIDDEN, FACILE_HIDDEN)]
    for i, (fin, fout) in enumerate(sizes, start=1):
        W = glorot_uniform(rng, fin, fout)  # [in, out]
        b = small_bias(rng, fout)
        z = h @ W.astype(np.float64) + b
        mean = (z.mean(axis=0) + rng.standard_normal(fout) * 0.1 * z.std(axis=0)).astype(np.float32)
        var = (z.var(axis=0) * rng.uniform(0.7, 1.4, fout)).astype(np.float32)
        scale = rng.uniform(0.5, 1.5, fout).astype(np.float32)
        bias = (rng.standard_normal(fout) * 0.2).astype(np.float32)
        assert np.all(var > 0)
        w[f"fc{i}.weight"] = np.ascontiguousarray(W.T)  # PyTorch layout [out, in] -> Gemm transB=1
        w[f"fc{i}.bias"] = b
        w[f"bn{i}.weight"] = scale
        w[f"bn{i}.bias"] = bias
        w[f"bn{i}.running_mean"] = mean
        w[f"bn{i}.running_var"] = var
        h = facile_bn_relu(z, w, i)
    W = glorot_uniform(rng, FACILE_HIDDEN, 1)
    w["fc3.weight"] = np.ascontiguousarray(W.T)  # [1, 36]
    w["fc3.bias"] = np.array([0.1], dtype=np.float32)
    return w


def facile_bn_relu(z, w, i):
    f = lambda k: w[f"bn{i}.{k}"].astype(np.float64)
    y = (z - f("running_mean")) / np.sqrt(f("running_var") + np.float64(np.float32(FACILE_EPS))) * f("weight") + f("bias")
    return np.maximum(y, 0.0)


def facile_forward64(w, x):
    f = lambda k: w[k].astype(np.float64)
    h = x.astype(np.float64)
    for i in (1, 2):
        z = h @ f(f"fc{i}.weight").T + f(f"fc{i}.bias")
        h = facile_bn_relu(z, w, i)
    return h @ f("fc3.weight").T + f("fc3.bias")


def facile_model(w):
    nodes = []
    prev = "input"
    for i in (1, 2):
        nodes.append(
            helper.make_node(
                "Gemm",
                [prev, f"fc{i}.weight", f"fc{i}.bias"],
                [f"/fc{i}/Gemm_output_0"],
                name=f"/fc{i}/Gemm",
                alpha=1.0,
                beta=1.0,
                transB=1,
            )
        )
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [f"/fc{i}/Gemm_output_0", f"bn{i}.weight", f"bn{i}.bias", f"bn{i}.running_mean", f"bn{i}.running_var"],
                [f"/bn{i}/BatchNormalization_output_0"],
                name=f"/bn{i}/BatchNormalization",
                epsilon=FACILE_EPS,
                momentum=0.9,
            )
        )
        nodes.append(
            helper.make_node(
                "Relu", [f"/bn{i}/BatchNormalization_output_0"], [f"/act{i}/Relu_output_0"], name=f"/act{i}/Relu"
            )
        )
        prev = f"/act{i}/Relu_output_0"
    nodes.append(
        helper.make_node(
            "Gemm", [prev, "fc3.weight", "fc3.bias"], ["output"], name="/fc3/Gemm", alpha=1.0, beta=1.0, transB=1
        )
    )
    order = []
    for i in (1, 2):
        order += [f"fc{i}.weight", f"fc{i}.bias"] + [f"bn{i}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
    order += ["fc3.weight", "fc3.bias"]
    graph = helper.make_graph(
        nodes,
        "facile",
        [f32_tensor("input", ["N", FACILE_FEATURES])],
        [f32_tensor("output", ["N", 1])],
        initializer=[init(k, w[k]) for k in order],
    )
    return finish_model(
        graph,
        "FACILE-like HCAL energy regression: 15 features per HCAL channel -> corrected energy. "
        "Random weights, generated by hltinfer models/generate.py.",
    )


def build_facile():
    d = ROOT / "facile"
    rng_w = np.random.default_rng(20230613)
    rng_x = np.random.default_rng(13)
    w = facile_weights(rng_w)
    model = facile_model(w)
    check_shape_inference(model, {"output": ["N", 1]})
    model_bytes = model.SerializeToString()
    write_bytes(d / "1" / "model.onnx", model_bytes)

    write_json(
        d / "config.json",
        {
            "name": "facile",
            "backend": "onnxruntime",
            "max_batch_size": FACILE_MAX_BATCH,
            "instance_group": [{"kind": "KIND_CPU", "count": 1}],
            "dynamic_batching": {"max_queue_delay_microseconds": 100},
        },
    )

    clean_dir(d / "reference")
    stats = []
    for n in FACILE_CASES:
        case = f"n{n}"
        x = rng_x.standard_normal((n, FACILE_FEATURES)).astype(np.float32)
        ref64 = facile_forward64(w, x)
        got = run_onnxruntime(model_bytes, {"input": x}, ["output"])
        err, _ = compare("facile", case, "output", got["output"], ref64)
        write_reference(d, case, [("input", x)], [("output", ref64.astype(np.float32))])
        stats.append(f"facile {case}: output mean {ref64.mean():+.3f} std {ref64.std():.3f}, max |ort - ref| {err:.2e}")
    return stats


# --------------------------------------------------------------------------- jet tagger


JET_INPUT = 64  # 16 constituents x 4 features, flattened
JET_LAYERS = [64, 128, 64, 32, 5]
JET_CLASSES = ["b", "c", "uds", "g", "tau"]
JET_MAX_BATCH = 1024
JET_CASES = [1, 3, 64]


def jet_weights(rng):
    w = {}
    n = len(JET_LAYERS) - 1
    for i in range(n):
        fin, fout = JET_LAYERS[i], JET_LAYERS[i + 1]
        last = i == n - 1
        # Glorot uniform with the ReLU gain (sqrt 2) on hidden layers keeps activations O(1);
        # the logit layer gets gain 2 so class probabilities are spread, not uniform.
        W = glorot_uniform(rng, fin, fout, gain=2.0 if last else np.sqrt(2.0))
        w[f"dense{i + 1}.kernel"] = W  # [in, out]: MatMul(x, W)
        w[f"dense{i + 1}.bias"] = small_bias(rng, fout, 0.1)
    return w


def jet_forward64(w, x):
    h = x.astype(np.float64)
    n = len(JET_LAYERS) - 1
    for i in range(1, n + 1):
        h = h @ w[f"dense{i}.kernel"].astype(np.float64) + w[f"dense{i}.bias"].astype(np.float64)
        if i < n:
            h = np.maximum(h, 0.0)
    logits = h
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True), logits


def jet_model(w):
    nodes = []
    prev = "jet_features"
    n = len(JET_LAYERS) - 1
    for i in range(1, n + 1):
        mm = f"/dense{i}/MatMul_output_0"
        add = "logits" if i == n else f"/dense{i}/Add_output_0"
        nodes.append(helper.make_node("MatMul", [prev, f"dense{i}.kernel"], [mm], name=f"/dense{i}/MatMul"))
        nodes.append(helper.make_node("Add", [mm, f"dense{i}.bias"], [add], name=f"/dense{i}/Add"))
        if i < n:
            relu = f"/dense{i}/Relu_output_0"
            nodes.append(helper.make_node("Relu", [add], [relu], name=f"/dense{i}/Relu"))
            prev = relu
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="/softmax/Softmax", axis=-1))
    order = []
    for i in range(1, n + 1):
        order += [f"dense{i}.kernel", f"dense{i}.bias"]
    nclass = JET_LAYERS[-1]
    graph = helper.make_graph(
        nodes,
        "jet_tagger",
        [f32_tensor("jet_features", ["batch", JET_INPUT])],
        [f32_tensor("probabilities", ["batch", nclass]), f32_tensor("logits", ["batch", nclass])],
        initializer=[init(k, w[k]) for k in order],
    )
    model = finish_model(
        graph,
        "Jet-flavour tagging MLP on 16 constituents x 4 features; classes "
        + ", ".join(JET_CLASSES)
        + ". Random weights, generated by hltinfer models/generate.py.",
    )
    onnx.helper.set_model_props(model, {"classes": ",".join(JET_CLASSES)})
    return model


def build_jet_tagger():
    d = ROOT / "jet_tagger"
    rng_w = np.random.default_rng(20190402)
    rng_x = np.random.default_rng(64)
    w = jet_weights(rng_w)
    model = jet_model(w)
    onnx.checker.check_model(model, full_check=True)
    nclass = JET_LAYERS[-1]
    check_shape_inference(model, {"probabilities": ["batch", nclass], "logits": ["batch", nclass]})
    model_bytes = model.SerializeToString()
    write_bytes(d / "1" / "model.onnx", model_bytes)

    write_json(
        d / "config.json",
        {
            "name": "jet_tagger",
            "backend": "onnxruntime",
            "max_batch_size": JET_MAX_BATCH,
            "input": [{"name": "jet_features", "data_type": "TYPE_FP32", "dims": [JET_INPUT]}],
            "output": [
                {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [nclass]},
                {"name": "logits", "data_type": "TYPE_FP32", "dims": [nclass]},
            ],
            "instance_group": [{"kind": "KIND_CPU", "count": 1}],
            "dynamic_batching": {"preferred_batch_size": [64, 256], "max_queue_delay_microseconds": 100},
        },
    )

    clean_dir(d / "reference")
    stats = []
    for b in JET_CASES:
        case = f"batch{b}"
        x = rng_x.standard_normal((b, JET_INPUT)).astype(np.float32)
        probs64, logits64 = jet_forward64(w, x)
        got = run_onnxruntime(model_bytes, {"jet_features": x}, ["probabilities", "logits"])
        perr, _ = compare("jet_tagger", case, "probabilities", got["probabilities"], probs64)
        lerr, _ = compare("jet_tagger", case, "logits", got["logits"], logits64)
        write_reference(
            d,
            case,
            [("jet_features", x)],
            [("probabilities", probs64.astype(np.float32)), ("logits", logits64.astype(np.float32))],
        )
        stats.append(
            f"jet_tagger {case}: logits std {logits64.std():.3f}, mean max prob {probs64.max(axis=-1).mean():.3f}, "
            f"max |ort - ref| probabilities {perr:.2e} logits {lerr:.2e}"
        )
    return stats


# --------------------------------------------------------------------------- main


def main():
    verbose = "-v" in sys.argv[1:]
    fstats = build_facile()
    jstats = build_jet_tagger()
    if verbose:
        print("\n".join(fstats + jstats))
    print(f"wrote {os.path.relpath(ROOT / 'facile')} and {os.path.relpath(ROOT / 'jet_tagger')}")


if __name__ == "__main__":
    main()
