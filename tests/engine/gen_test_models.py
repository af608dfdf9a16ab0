#!/usr/bin/env python3
"""Generates the engine's end-to-end test models and their onnxruntime reference outputs.

Writes tests/engine/data/: <model>.onnx, raw little-endian tensors <model>.b<batch>.{in,out}<i>.bin
and manifest.txt, which tests/engine/test_exec.c reads. Each graph mimics what PyTorch or
Keras/tf2onnx exporters emit and has a symbolic batch dim "N"; references are computed by
onnxruntime (CPU EP, all graph optimisations off so it runs the ops as written) at two batch sizes.

Deterministic: fixed seeds, fixed ir_version/opsets, no timestamps. Re-run after editing:
    .venv/bin/python tests/engine/gen_test_models.py
and commit the data folder (kept under 1 MB).

manifest.txt, one record per line, fields separated by single spaces:
    model <file.onnx>
    case <batch>
    in <name> <FP32|INT64> <rank> <dims...> <file.bin>
    out <name> <FP32|INT64> <rank> <dims...> <file.bin>
    end
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
IR_VERSION = 8  # what torch.onnx emits for opsets 11..17; onnxruntime accepts it
BATCHES = (1, 3)

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def rng(seed):
    return np.random.default_rng(seed)


def w(r, *shape, scale=0.5):
    return (r.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def const_node(out, arr, name=None):
    return helper.make_node("Constant", [], [out], name=name or out,
                            value=numpy_helper.from_array(np.asarray(arr), out + "_v"))


def model(name, nodes, inputs, outputs, inits, opset, check=True):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="hltinfer-gen_test_models", ir_version=IR_VERSION)
    if check:  # the checker insists on a shape for every graph output
        onnx.checker.check_model(m)
    return m


def mlp_gemm_opset11():
    """torch.nn.Sequential(Linear, ReLU, Linear, LeakyReLU(0.2), Linear) + softmax(dim=1)."""
    r = rng(1)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="/fc1/Gemm", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="/act1/Relu"),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], name="/fc2/Gemm", alpha=1.0,
                         beta=1.0, transB=1),
        helper.make_node("LeakyRelu", ["h2"], ["a2"], name="/act2/LeakyRelu", alpha=0.2),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], name="/fc3/Gemm", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="/Softmax", axis=1),
    ]
    inits = [init("w1", w(r, 32, 16)), init("b1", w(r, 32)), init("w2", w(r, 24, 32)),
             init("b2", w(r, 24)), init("w3", w(r, 5, 24)), init("b3", w(r, 5))]
    return model("mlp_gemm_opset11", nodes, [vi("x", F, ["N", 16])],
                 [vi("prob", F, ["N", 5]), vi("logits", F, ["N", 5])], inits, 11)


def keras_matmul_add_opset13():
    """tf2onnx Dense layers: MatMul + Add, tanh and sigmoid activations."""
    r = rng(2)
    nodes = [
        helper.make_node("MatMul", ["input_1", "dense/kernel"], ["mm1"], name="dense/MatMul"),
        helper.make_node("Add", ["mm1", "dense/bias"], ["d1"], name="dense/BiasAdd"),
        helper.make_node("Tanh", ["d1"], ["t1"], name="dense/Tanh"),
        helper.make_node("MatMul", ["t1", "dense_1/kernel"], ["mm2"], name="dense_1/MatMul"),
        helper.make_node("Add", ["mm2", "dense_1/bias"], ["d2"], name="dense_1/BiasAdd"),
        helper.make_node("Sigmoid", ["d2"], ["dense_1"], name="dense_1/Sigmoid"),
    ]
    inits = [init("dense/kernel", w(r, 10, 20)), init("dense/bias", w(r, 20)),
             init("dense_1/kernel", w(r, 20, 3)), init("dense_1/bias", w(r, 3))]
    return model("keras_matmul_add_opset13", nodes, [vi("input_1", F, ["unk__6", 10])],
                 [vi("dense_1", F, ["unk__7", 3])], inits, 13)


def flatten_reshape_opset13():
    """Flatten of an image-like input, Reshape with a 0/-1 shape initializer and with a
    shape coming from a Constant node."""
    r = rng(3)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["fc"], name="/fc/Gemm", transB=1),
        helper.make_node("Reshape", ["fc", "shape0"], ["r0"], name="/Reshape"),
        const_node("/Constant_output_0", np.array([0, 2, -1], dtype=np.int64),
                   name="/Constant"),
        helper.make_node("Reshape", ["r0", "/Constant_output_0"], ["r1"], name="/Reshape_1"),
        helper.make_node("Relu", ["r1"], ["y"], name="/Relu"),
        helper.make_node("Flatten", ["x"], ["flat0"], name="/Flatten_0", axis=0),
    ]
    inits = [init("w", w(r, 24, 60)), init("b", w(r, 24)),
             init("shape0", np.array([0, -1, 4], dtype=np.int64))]
    return model("flatten_reshape_opset13", nodes, [vi("x", F, ["N", 3, 4, 5])],
                 [vi("y", F, ["N", 2, 12]), vi("flat0", F, [1, "M"])], inits, 13)


def unsqueeze_squeeze(opset):
    """Unsqueeze/Squeeze with axes as attribute (opset 11) or input (opset 13)."""
    r = rng(4)
    if opset < 13:
        unsq = helper.make_node("Unsqueeze", ["x"], ["u"], name="/Unsqueeze", axes=[1, -1])
        sq = helper.make_node("Squeeze", ["m"], ["s"], name="/Squeeze", axes=[-1, 1])
        sq_all = helper.make_node("Squeeze", ["k"], ["s2"], name="/Squeeze_1")
        extra = []
        inits = []
    else:
        unsq = helper.make_node("Unsqueeze", ["x", "axes_u"], ["u"], name="/Unsqueeze")
        sq = helper.make_node("Squeeze", ["m", "axes_s"], ["s"], name="/Squeeze")
        sq_all = helper.make_node("Squeeze", ["k"], ["s2"], name="/Squeeze_1")
        extra = [const_node("axes_s", np.array([-1, 1], dtype=np.int64))]
        inits = [init("axes_u", np.array([1, -1], dtype=np.int64))]
    nodes = extra + [
        unsq,  # [N,8] -> [N,1,8,1]
        helper.make_node("Mul", ["u", "scale"], ["m"], name="/Mul"),  # * [1,1,8,1]
        sq,  # -> [N,8]
        helper.make_node("Add", ["s", "bias"], ["k0"], name="/Add"),
        helper.make_node("Reshape", ["k0", "shape_k"], ["k"], name="/Reshape"),  # [N,1,8]
        sq_all,  # Squeeze without axes: every 1 goes -> [8] at N=1, [N,8] otherwise
    ]
    inits += [init("scale", w(r, 1, 1, 8, 1)), init("bias", w(r, 8)),
              init("shape_k", np.array([-1, 1, 8], dtype=np.int64))]
    # s2's rank depends on the batch size: declared without a shape.
    outputs = [vi("s", F, ["N", 8]), vi("u", F, ["N", 1, 8, 1]), vi("s2", F, None)]
    return model(f"unsqueeze_squeeze_opset{opset}", nodes, [vi("x", F, ["N", 8])], outputs,
                 inits, opset, check=False)


def transpose_concat_opset13():
    """Transpose + Concat along a negative axis, two graph inputs."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("Concat", ["xt", "y"], ["c"], name="/Concat", axis=-1),
        helper.make_node("Transpose", ["c"], ["ct"], name="/Transpose_1"),  # default: reverse
        helper.make_node("Concat", ["x", "x", "z"], ["c1"], name="/Concat_1", axis=1),
    ]
    return model("transpose_concat_opset13", nodes,
                 [vi("x", F, ["N", 4, 6]), vi("y", F, ["N", 6, 3]), vi("z", F, ["N", 2, 6])],
                 [vi("ct", F, [7, 6, "N"]), vi("c1", F, ["N", 10, 6])], [], 13)


def softmax3d(opset):
    """Softmax on a 3-D tensor: axis=1 means [d1*d2] rows before opset 13, the single axis
    from opset 13. Also the default axis (1 vs -1) and a negative axis."""
    nodes = [
        helper.make_node("Softmax", ["x"], ["s_axis1"], name="/Softmax", axis=1),
        helper.make_node("Softmax", ["x"], ["s_default"], name="/Softmax_1"),
        helper.make_node("Softmax", ["x"], ["s_neg2"], name="/Softmax_2", axis=-2),
    ]
    return model(f"softmax3d_opset{opset}", nodes, [vi("x", F, ["N", 5, 7])],
                 [vi("s_axis1", F, ["N", 5, 7]), vi("s_default", F, ["N", 5, 7]),
                  vi("s_neg2", F, ["N", 5, 7])], [], opset)


def batchnorm_opset15():
    """BatchNorm1d on [N,C] and on [N,C,L] (inference form, as torch exports eval())."""
    r = rng(5)
    def bn_params(p, c):
        return [init(p + "scale", w(r, c) + 1.0), init(p + "bias", w(r, c)),
                init(p + "mean", w(r, c)), init(p + "var", np.abs(w(r, c)) + 0.1)]
    nodes = [
        helper.make_node("BatchNormalization", ["x", "a.scale", "a.bias", "a.mean", "a.var"],
                         ["y"], name="/bn/BatchNormalization", epsilon=1e-5, momentum=0.9),
        helper.make_node("BatchNormalization", ["z", "b.scale", "b.bias", "b.mean", "b.var"],
                         ["w"], name="/bn1d/BatchNormalization", epsilon=1e-3),
    ]
    return model("batchnorm_opset15", nodes, [vi("x", F, ["N", 6]), vi("z", F, ["N", 4, 10])],
                 [vi("y", F, ["N", 6]), vi("w", F, ["N", 4, 10])],
                 bn_params("a.", 6) + bn_params("b.", 4), 15)


def broadcast_ops_opset13():
    """Elementwise ops with the broadcasting patterns exporters produce."""
    r = rng(6)
    nodes = [
        helper.make_node("Sub", ["x", "row"], ["a"], name="/Sub"),        # [N,3,4] - [4]
        helper.make_node("Div", ["a", "col"], ["b"], name="/Div"),        # / [3,1]
        helper.make_node("Mul", ["b", "two"], ["c"], name="/Mul"),        # * scalar
        helper.make_node("Add", ["c", "y"], ["d"], name="/Add"),          # + [N,1,4]
        helper.make_node("LeakyRelu", ["d"], ["e"], name="/LeakyRelu"),  # default alpha
        helper.make_node("Sigmoid", ["e"], ["f"], name="/Sigmoid"),
        helper.make_node("Tanh", ["d"], ["g"], name="/Tanh"),
        helper.make_node("Mul", ["f", "g"], ["h"], name="/Mul_1"),
        helper.make_node("Div", ["one", "y"], ["inv"], name="/Div_1"),    # scalar / [N,1,4]
    ]
    inits = [init("row", w(r, 4)), init("col", (np.abs(w(r, 3, 1)) + 0.5)),
             init("two", np.array(2.0, dtype=np.float32)),
             init("one", np.array(1.0, dtype=np.float32))]
    return model("broadcast_ops_opset13", nodes,
                 [vi("x", F, ["N", 3, 4]), vi("y", F, ["N", 1, 4])],
                 [vi("h", F, ["N", 3, 4]), vi("inv", F, ["N", 1, 4])], inits, 13)


def pytorch_shape_chain_opset13():
    """x.view(-1, 12) the way older torch.onnx exported it: shape assembled from Constant
    nodes with Unsqueeze and Concat (folded at load), plus a batched MatMul against a weight
    (TimeDistributed Dense) and x @ x^T."""
    r = rng(7)
    nodes = [
        const_node("c_m1", np.array(-1, dtype=np.int64)),
        const_node("c_12", np.array(12, dtype=np.int64)),
        const_node("ax0", np.array([0], dtype=np.int64)),
        helper.make_node("Unsqueeze", ["c_m1", "ax0"], ["u_m1"], name="/Unsqueeze"),
        helper.make_node("Unsqueeze", ["c_12", "ax0"], ["u_12"], name="/Unsqueeze_1"),
        helper.make_node("Concat", ["u_m1", "u_12"], ["shape"], name="/Concat", axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["flat"], name="/Reshape"),  # [N*2, 12]
        helper.make_node("MatMul", ["x", "wt"], ["td"], name="/td/MatMul"),      # [N,2,12]x[12,5]
        helper.make_node("Transpose", ["x"], ["xt"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["gram"], name="/MatMul_1"),     # [N,2,2]
        helper.make_node("MatMul", ["v", "wt"], ["vw"], name="/MatMul_2"),       # [12]x[12,5]
    ]
    return model("pytorch_shape_chain_opset13", nodes,
                 [vi("x", F, ["N", 2, 12]), vi("v", F, [12])],
                 [vi("flat", F, ["M", 12]), vi("td", F, ["N", 2, 5]), vi("gram", F, ["N", 2, 2]),
                  vi("vw", F, [5])], [init("wt", w(r, 12, 5))], 13)


def int64_moves_opset13():
    """INT64 through the data-movement ops (shape-like tensors as graph I/O)."""
    nodes = [
        helper.make_node("Transpose", ["ids"], ["t"], name="/Transpose", perm=[0, 2, 1]),
        helper.make_node("Reshape", ["t", "shp"], ["r"], name="/Reshape"),
        helper.make_node("Concat", ["r", "extra"], ["c"], name="/Concat", axis=1),
        helper.make_node("Add", ["c", "off"], ["y"], name="/Add"),
    ]
    inits = [init("shp", np.array([0, -1], dtype=np.int64)),
             init("extra", np.array([[7, 8]], dtype=np.int64)),
             init("off", np.array([100], dtype=np.int64))]
    return model("int64_moves_opset13", nodes, [vi("ids", I64, [1, 2, 3])],
                 [vi("y", I64, [1, 8])], inits, 13)


MODELS = [mlp_gemm_opset11, keras_matmul_add_opset13, flatten_reshape_opset13,
          lambda: unsqueeze_squeeze(11), lambda: unsqueeze_squeeze(13),
          transpose_concat_opset13, lambda: softmax3d(11), lambda: softmax3d(13),
          batchnorm_opset15, broadcast_ops_opset13, pytorch_shape_chain_opset13,
          int64_moves_opset13]


def concrete(dims, batch):
    return [batch if isinstance(d, str) else d for d in dims]


def dims_of(v):
    return [d.dim_param if d.dim_param else d.dim_value
            for d in v.type.tensor_type.shape.dim]


NAMES = {F: ("FP32", np.float32), I64: ("INT64", np.int64)}


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    lines = []
    for make in MODELS:
        m = make()
        name = m.graph.name
        path = os.path.join(OUT, name + ".onnx")
        onnx.save_model(m, path)
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        lines.append(f"model {name}.onnx")
        r = rng(1000 + len(lines))
        batches = BATCHES if any(isinstance(d, str) for i in m.graph.input
                                 for d in dims_of(i)) else (1,)
        for batch in batches:
            lines.append(f"case {batch}")
            feeds = {}
            for k, i in enumerate(m.graph.input):
                tname, np_t = NAMES[i.type.tensor_type.elem_type]
                shape = concrete(dims_of(i), batch)
                if np_t == np.int64:
                    arr = r.integers(-50, 50, size=shape).astype(np.int64)
                else:
                    arr = (r.standard_normal(shape) * 1.5).astype(np.float32)
                feeds[i.name] = arr
                fn = f"{name}.b{batch}.in{k}.bin"
                arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(OUT, fn))
                lines.append(f"in {i.name} {tname} {arr.ndim} "
                             + " ".join(str(d) for d in arr.shape) + (" " if arr.ndim else "")
                             + fn)
            outs = sess.run(None, feeds)
            for k, (o, arr) in enumerate(zip(m.graph.output, outs)):
                tname, np_t = NAMES[o.type.tensor_type.elem_type]
                arr = np.ascontiguousarray(arr, dtype=np_t)
                fn = f"{name}.b{batch}.out{k}.bin"
                arr.astype(arr.dtype.newbyteorder("<")).tofile(os.path.join(OUT, fn))
                lines.append(f"out {o.name} {tname} {arr.ndim} "
                             + " ".join(str(d) for d in arr.shape) + (" " if arr.ndim else "")
                             + fn)
        lines.append("end")
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(MODELS)} models, {total} bytes to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
