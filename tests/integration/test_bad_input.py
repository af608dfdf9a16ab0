"""Bad client input never crashes the server or disturbs other clients: each case gets the
precise gRPC status with a message naming the model and tensor, and the server keeps serving
correct answers afterwards. Requests are built with tritonclient's own generated protobuf
classes and sent over a plain grpcio channel, so that malformed combinations can be made."""
import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from conftest import assert_close, load_reference

OPTS = [("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_receive_message_length", 2**31 - 1)]


@pytest.fixture
def stub(server):
    ch = grpc.insecure_channel(server.url, options=OPTS)
    yield service_pb2_grpc.GRPCInferenceServiceStub(ch)
    ch.close()


def jet_request(batch=3, **kw):
    x = np.random.default_rng(1).standard_normal((batch, 64)).astype(np.float32)
    req = service_pb2.ModelInferRequest(model_name=kw.get("model", "jet_tagger"),
                                        model_version=kw.get("version", ""))
    t = req.inputs.add()
    t.name = kw.get("name", "jet_features")
    t.datatype = kw.get("datatype", "FP32")
    t.shape.extend(kw.get("shape", [batch, 64]))
    req.raw_input_contents.append(kw.get("raw", x.tobytes()))
    return req


def still_serves(stub):
    inputs, expected = load_reference("jet_tagger", "batch1")
    req = jet_request(raw=inputs["jet_features"].tobytes(), batch=1)
    resp = stub.ModelInfer(req, timeout=30)
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(1, 5)
    assert_close(got, expected["probabilities"])


def expect_error(stub, req, code, *fragments):
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=30)
    assert e.value.code() == code, e.value.details()
    for f in fragments:
        assert f in e.value.details(), (f, e.value.details())
    still_serves(stub)
    return e.value.details()


def test_unknown_model(stub):
    expect_error(stub, jet_request(model="nope"), grpc.StatusCode.NOT_FOUND, "'nope'")


def test_unknown_version(stub):
    expect_error(stub, jet_request(version="7"), grpc.StatusCode.NOT_FOUND, "jet_tagger",
                 "version 7")


def test_non_numeric_version(stub):
    expect_error(stub, jet_request(version="latest"), grpc.StatusCode.INVALID_ARGUMENT,
                 "jet_tagger", "latest")


def test_missing_input(stub):
    req = service_pb2.ModelInferRequest(model_name="jet_tagger")
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger", "missing input",
                 "jet_features")


def test_unknown_input_name(stub):
    expect_error(stub, jet_request(name="pixels"), grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger",
                 "unexpected input 'pixels'")


def test_wrong_datatype(stub):
    expect_error(stub, jet_request(datatype="INT64"), grpc.StatusCode.INVALID_ARGUMENT,
                 "jet_tagger", "jet_features", "INT64", "FP32")


def test_wrong_rank(stub):
    expect_error(stub, jet_request(shape=[3, 8, 8]), grpc.StatusCode.INVALID_ARGUMENT,
                 "jet_tagger", "jet_features", "dims")


def test_wrong_shape(stub):
    expect_error(stub, jet_request(shape=[3, 63]), grpc.StatusCode.INVALID_ARGUMENT,
                 "jet_tagger", "jet_features", "shape[1] = 63, expected 64")


def test_raw_size_mismatch(stub):
    req = jet_request(raw=b"\0" * (3 * 64 * 4 - 4))
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger", "jet_features",
                 "764 bytes", "768")


def test_batch_above_max_batch_size(stub):
    req = jet_request(batch=1025)
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger", "jet_features",
                 "batch size 1025", "1024")


def test_zero_batch(stub):
    req = jet_request(shape=[0, 64], raw=b"")
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "batch size 0")


def test_typed_and_raw_mixed(stub):
    req = jet_request()
    req.inputs[0].contents.fp32_contents.extend([0.0] * 192)
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_features", "contents")


def test_typed_contents_wrong_count(stub):
    req = service_pb2.ModelInferRequest(model_name="jet_tagger")
    t = req.inputs.add(name="jet_features", datatype="FP32", shape=[2, 64])
    t.contents.fp32_contents.extend([1.0] * 100)
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_features", "400 bytes", "512")


def test_unknown_requested_output(stub):
    req = jet_request()
    req.outputs.add(name="energy")
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger", "'energy'")


def test_extra_raw_entry(stub):
    req = jet_request()
    req.raw_input_contents.append(b"\0" * 16)
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_tagger", "raw_input_contents")


def test_not_a_protobuf(server):
    ch = grpc.insecure_channel(server.url, options=OPTS)
    call = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                          request_serializer=None, response_deserializer=None)
    for garbage in (b"\xff\xff\xff\xff\xff", b"\x0a\x64abc", b"\x3a\x80\x80\x80\x80\x80\x80"):
        with pytest.raises(grpc.RpcError) as e:
            call(garbage, timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed ModelInferRequest" in e.value.details()
    meta = ch.unary_unary("/inference.GRPCInferenceService/ModelMetadata",
                          request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        meta(b"\xff\xff\xff", timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    still_serves(service_pb2_grpc.GRPCInferenceServiceStub(ch))
    ch.close()


def test_unknown_parameters_ignored(stub):
    inputs, expected = load_reference("jet_tagger", "batch1")
    req = jet_request(raw=inputs["jet_features"].tobytes(), batch=1)
    req.parameters["triton_enable_empty_final_response"].bool_param = False
    req.parameters["my_custom"].string_param = "x"
    req.parameters["priority"].uint64_param = 1
    resp = stub.ModelInfer(req, timeout=30)
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(1, 5)
    assert_close(got, expected["probabilities"])


def test_typed_inputs_accepted(stub):
    inputs, expected = load_reference("jet_tagger", "batch3")
    req = service_pb2.ModelInferRequest(model_name="jet_tagger", id="typed")
    t = req.inputs.add(name="jet_features", datatype="FP32", shape=[3, 64])
    t.contents.fp32_contents.extend(inputs["jet_features"].ravel().tolist())
    resp = stub.ModelInfer(req, timeout=30)
    assert resp.id == "typed"
    assert not resp.outputs[0].HasField("contents")  # outputs always raw, as Triton
    assert len(resp.raw_output_contents) == 2
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(3, 5)
    assert_close(got, expected["probabilities"])


def test_message_larger_than_grpc_default_limit(stub):
    # 6 MiB of raw data: over gRPC's default 4 MiB receive limit, so this reaches our
    # validation only if the server raised the limit (to 2 GiB - 1, as Triton).
    req = jet_request(raw=b"\0" * (6 << 20))
    expect_error(stub, req, grpc.StatusCode.INVALID_ARGUMENT, "jet_features", "bytes of data")


def test_unknown_method_is_unimplemented(server):
    ch = grpc.insecure_channel(server.url)
    for path in ("/inference.GRPCInferenceService/ModelStreamInferX", "/foo.Bar/Baz",
                 "/inference.GRPCInferenceService/SystemSharedMemoryStatus"):
        call = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            call(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
    ch.close()


def test_rejections_are_logged_rate_limited(server_factory):
    """Every rejected request is logged (method, status, message) at the default level, at most
    20 lines a second; the lines held back are counted and reported by the next line that
    passes, so logged lines + reported suppressions account for every rejection."""
    import re
    import time
    s = server_factory(args=["--log-verbose=0"])  # the default level (the fixture's is 1)
    ch = grpc.insecure_channel(s.url, options=OPTS)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
    n = 150
    for _ in range(n):
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(jet_request(model="nope"), timeout=30)
    time.sleep(1.2)  # a new one-second window: the next line carries the pending count
    with pytest.raises(grpc.RpcError):
        stub.ModelInfer(jet_request(model="nope"), timeout=30)
    still_serves(stub)
    ch.close()
    pat = re.compile(r"event=rpc_error method=ModelInfer status=NOT_FOUND "
                     r"message=\"[^\"]*'nope'[^\"]*\"(?: suppressed_before=(\d+))?$")
    lines, suppressed = 0, 0
    deadline = time.time() + 10
    while time.time() < deadline:
        found = [pat.search(l) for l in list(s.log) if "event=rpc_error" in l]
        assert all(found), [l for l in s.log if "event=rpc_error" in l][:3]
        lines = len(found)
        suppressed = sum(int(m.group(1) or 0) for m in found)
        if lines + suppressed == n + 1:
            break
        time.sleep(0.1)
    assert lines + suppressed == n + 1, (lines, suppressed)
    assert 1 <= lines < n + 1, "a burst of rejections is not logged line by line"
