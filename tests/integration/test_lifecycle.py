"""Server lifecycle: grpc.health.v1, --help, model control modes, and SIGTERM with requests in
flight (every accepted request is answered, then the process exits 0)."""
import queue
import signal
import subprocess

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import SERVER, load_reference


def test_help_and_bad_flag():
    out = subprocess.run([SERVER, "--help"], capture_output=True, timeout=30)
    assert out.returncode == 0
    for flag in (b"--model-repository", b"--grpc-port", b"--log-verbose", b"--model-control-mode"):
        assert flag in out.stdout
    out = subprocess.run([SERVER, "--grpc-port=notaport"], capture_output=True, timeout=30)
    assert out.returncode == 2
    assert b"--grpc-port" in out.stderr


def test_grpc_health_check(server):
    ch = grpc.insecure_channel(server.url)
    check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                           response_deserializer=None)
    assert check(b"", timeout=10) == b"\x08\x01"  # status: SERVING
    svc = b"inference.GRPCInferenceService"
    assert check(b"\x0a" + bytes([len(svc)]) + svc, timeout=10) == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as e:
        check(b"\x0a\x03foo", timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_model_control_none_forbids_load(server_factory):
    s = server_factory(args=["--model-control-mode=none"])
    c = grpcclient.InferenceServerClient(url=s.url)
    with pytest.raises(InferenceServerException) as e:
        c.unload_model("facile")
    assert "StatusCode.UNAVAILABLE" in str(e.value.status())
    assert "not allowed" in e.value.message()
    assert c.is_model_ready("facile")


def test_model_control_explicit_loads_on_request(server_factory):
    s = server_factory(args=["--model-control-mode=explicit", "--load-model=jet_tagger"])
    c = grpcclient.InferenceServerClient(url=s.url)
    assert c.is_model_ready("jet_tagger")
    idx = {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}
    assert idx["facile"].get("state", "") == ""  # present in the repository, never loaded
    assert not c.is_model_ready("facile")
    c.load_model("facile")
    assert c.is_model_ready("facile")
    with pytest.raises(InferenceServerException) as e:
        c.load_model("does_not_exist")
    assert "StatusCode.NOT_FOUND" in str(e.value.status())


def test_sigterm_finishes_in_flight_requests(server_factory):
    s = server_factory()
    c = grpcclient.InferenceServerClient(url=s.url)
    inputs, expected = load_reference("facile", "n16000")
    results = queue.Queue()
    n = 24
    for k in range(n):
        i = grpcclient.InferInput("input", list(inputs["input"].shape), "FP32")
        i.set_data_from_numpy(inputs["input"])
        c.async_infer("facile", [i], callback=lambda result, error: results.put((result, error)),
                      request_id=str(k))
    # wait until the server has accepted at least one request, then ask it to stop
    first = results.get(timeout=60)
    s.proc.send_signal(signal.SIGTERM)
    done = [first] + [results.get(timeout=60) for _ in range(n - 1)]
    ok = [r for r, e in done if e is None]
    # requests already accepted are answered; ones that arrive after shutdown began may be
    # refused with UNAVAILABLE, never dropped silently
    for r, e in done:
        if e is not None:
            assert "UNAVAILABLE" in str(e.status()) or "CANCELLED" in str(e.status()), e
    assert ok, "no request completed"
    for r in ok:
        np.testing.assert_allclose(r.as_numpy("output"), expected["output"], rtol=1e-4,
                                   atol=1e-5)
    assert s.proc.wait(60) == 0
    assert "event=stopped" in s.log_text()
