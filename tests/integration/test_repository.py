"""Model repository behaviour through the protocol: models written by other tools served
without edits (checked against onnxruntime), failed models reported with their reason while the
rest serves, version folders, messages larger than gRPC's default limit both ways."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from conftest import assert_close

RNG = np.random.default_rng(7)


def init(name, *shape, scale=0.3):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def save(model, repo, name, version=1, config=None):
    d = os.path.join(repo, name, str(version))
    os.makedirs(d, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(d, "model.onnx"))
    if config is not None:
        with open(os.path.join(repo, name, "config.json"), "w") as f:
            f.write(config)


def two_branch_model():
    """A Keras/tf2onnx-looking graph: two inputs, MatMul+Add, BatchNorm, Concat, Reshape with
    0/-1, Transpose, Unsqueeze/Squeeze with axes inputs (opset 13), LeakyRelu/Sigmoid/Tanh,
    Sub/Mul/Div broadcasting, Softmax; no config.json."""
    nodes = [
        helper.make_node("MatMul", ["tracks", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h1b"]),
        helper.make_node("BatchNormalization", ["h1b", "s", "bb", "mu", "var"], ["bn"],
                         epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn"], ["a1"], alpha=0.1),
        helper.make_node("Gemm", ["towers", "w2", "b2"], ["h2"], transB=1),
        helper.make_node("Tanh", ["h2"], ["a2"]),
        helper.make_node("Concat", ["a1", "a2"], ["cat"], axis=1),
        helper.make_node("Reshape", ["cat", "shape"], ["r"]),          # [N, 4, 6]
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # [N, 6, 4]
        helper.make_node("Sub", ["t", "c1"], ["d"]),
        helper.make_node("Mul", ["d", "c2"], ["e"]),
        helper.make_node("Div", ["e", "c3"], ["f"]),
        helper.make_node("Sigmoid", ["f"], ["g"]),
        helper.make_node("Flatten", ["g"], ["flat"], axis=1),        # [N, 24]
        helper.make_node("Unsqueeze", ["flat", "ax"], ["u"]),        # [N, 1, 24]
        helper.make_node("Squeeze", ["u", "ax"], ["sq"]),
        helper.make_node("MatMul", ["sq", "w3"], ["logit"]),
        helper.make_node("Softmax", ["logit"], ["prob"], axis=-1),
        helper.make_node("Relu", ["logit"], ["relu_out"]),
    ]
    inits = [init("w1", 10, 16), init("b1", 16), init("w2", 8, 5), init("b2", 8),
             numpy_helper.from_array(np.abs(RNG.standard_normal(16)).astype(np.float32) + .5, "s"),
             init("bb", 16), init("mu", 16),
             numpy_helper.from_array(np.abs(RNG.standard_normal(16)).astype(np.float32) + .5,
                                     "var"),
             numpy_helper.from_array(np.array([0, 4, -1], dtype=np.int64), "shape"),
             init("c1", 4), init("c2", 6, 1), numpy_helper.from_array(
                 np.array([2.0], dtype=np.float32), "c3"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "ax"), init("w3", 24, 3)]
    g = helper.make_graph(
        nodes, "two_branch",
        [helper.make_tensor_value_info("tracks", TensorProto.FLOAT, ["n", 10]),
         helper.make_tensor_value_info("towers", TensorProto.FLOAT, ["n", 5])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n", 3]),
         helper.make_tensor_value_info("relu_out", TensorProto.FLOAT, ["n", 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                             producer_name="tf2onnx-like", ir_version=8)


def fixed_shape_model():
    """PyTorch-exporter style with a fixed batch of 1 (no batching): Flatten + Gemm + Softmax
    opset 11 (2-D coercion semantics) + Unsqueeze with axes attribute."""
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w", "b"], ["h"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Unsqueeze", ["h"], ["u"], axes=[1]),
        helper.make_node("Softmax", ["u"], ["y"], axis=1),
    ]
    g = helper.make_graph(nodes, "fixed",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4])],
                          [init("w", 4, 6), init("b", 4)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)],
                             producer_name="pytorch-like", ir_version=6)


def test_foreign_models_served_without_edits(server_factory):
    models = {"two_branch": two_branch_model(), "fixed": fixed_shape_model()}

    def extra(repo):
        for name, m in models.items():
            save(m, repo, name)

    s = server_factory(extra)
    c = grpcclient.InferenceServerClient(url=s.url)
    cfg = c.get_model_config("two_branch", as_json=True)["config"]
    assert cfg["max_batch_size"] == 1024  # documented default for batching ONNX models
    assert [i["name"] for i in cfg["input"]] == ["tracks", "towers"]
    cfg = c.get_model_config("fixed", as_json=True)["config"]
    assert cfg.get("max_batch_size", 0) == 0
    assert c.get_model_metadata("fixed", as_json=True)["inputs"][0]["shape"] == ["1", "2", "3"]

    for batch in (1, 7, 300):
        feeds = {"tracks": RNG.standard_normal((batch, 10)).astype(np.float32),
                 "towers": RNG.standard_normal((batch, 5)).astype(np.float32)}
        want = ort.InferenceSession(models["two_branch"].SerializeToString()).run(None, feeds)
        inputs = []
        for k, v in feeds.items():
            i = grpcclient.InferInput(k, list(v.shape), "FP32")
            i.set_data_from_numpy(v)
            inputs.append(i)
        res = c.infer("two_branch", inputs)
        assert_close(res.as_numpy("prob"), want[0])
        assert_close(res.as_numpy("relu_out"), want[1])

    x = RNG.standard_normal((1, 2, 3)).astype(np.float32)
    want = ort.InferenceSession(models["fixed"].SerializeToString()).run(None, {"x": x})[0]
    i = grpcclient.InferInput("x", [1, 2, 3], "FP32")
    i.set_data_from_numpy(x)
    assert_close(c.infer("fixed", [i]).as_numpy("y"), want)


def broken_models(repo):
    os.makedirs(os.path.join(repo, "garbage", "1"))
    with open(os.path.join(repo, "garbage", "1", "model.onnx"), "wb") as f:
        f.write(b"this is not an onnx file \x00\x01\x02" * 10)
    os.makedirs(os.path.join(repo, "no_file", "1"))
    os.makedirs(os.path.join(repo, "no_version"))
    save(fixed_shape_model(), repo, "bad_config", config='{"max_batch_size": "many"}')
    conv = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1")], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        [init("w", 1, 1, 3, 3)]), opset_imports=[helper.make_opsetid("", 13)])
    save(conv, repo, "unsupported_op")
    save(fixed_shape_model(), repo, "wrong_dims",
         config='{"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2, 4]}]}')


def test_failed_models_reported_and_others_serve(server_factory):
    s = server_factory(broken_models)
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.is_server_live()
    assert not c.is_server_ready()  # strict readiness, as Triton: not every model loaded
    idx = {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}
    assert idx["facile"]["state"] == "READY" and idx["jet_tagger"]["state"] == "READY"
    expect = {"garbage": "", "no_file": "not found", "no_version": "no version directory",
              "bad_config": "max_batch_size", "unsupported_op": "Conv",
              "wrong_dims": "dims"}
    for name, fragment in expect.items():
        assert idx[name]["state"] == "UNAVAILABLE", name
        assert idx[name]["reason"], name
        assert fragment in idx[name]["reason"], (name, idx[name]["reason"])
    assert "conv1" in idx["unsupported_op"]["reason"]
    # inference on a failed model: UNAVAILABLE with the reason
    i = grpcclient.InferInput("x", [1, 2, 3], "FP32")
    i.set_data_from_numpy(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(InferenceServerException) as e:
        c.infer("wrong_dims", [i])
    assert "StatusCode.UNAVAILABLE" in str(e.value.status())
    assert "wrong_dims" in e.value.message()
    ready_only = c.get_model_repository_index(as_json=True)
    assert c.is_model_ready("jet_tagger")
    x = np.zeros((2, 64), np.float32)
    i = grpcclient.InferInput("jet_features", [2, 64], "FP32")
    i.set_data_from_numpy(x)
    assert c.infer("jet_tagger", [i]).as_numpy("probabilities").shape == (2, 5)
    assert ready_only


def test_versions_latest_served_by_default(server_factory):
    def extra(repo):
        save(fixed_shape_model(), repo, "multi", version=1)
        save(fixed_shape_model(), repo, "multi", version=3)
        os.makedirs(os.path.join(repo, "multi", "notes"))  # not a version: ignored

    s = server_factory(extra)
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.get_model_metadata("multi", as_json=True)["versions"] == ["3"]
    assert c.is_model_ready("multi", "3")
    assert not c.is_model_ready("multi", "1")


def test_response_larger_than_grpc_default_limit(server_factory):
    width = 1 << 18  # 1 MiB per row

    def extra(repo):
        g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "ident",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", width])])
        save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), repo, "big",
             config='{"max_batch_size": 8}')

    s = server_factory(extra)
    c = grpcclient.InferenceServerClient(url=s.url)
    x = RNG.standard_normal((6, width)).astype(np.float32)
    i = grpcclient.InferInput("x", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    np.testing.assert_array_equal(c.infer("big", [i]).as_numpy("y"), x)
