"""Dynamic batching and scheduling through the protocol: a flood of distinct clients is batched
and every client gets exactly its own answer; deadlines, queue timeouts and cancellation answer
requests without computing them; full queues refuse at once; the admission policy turns new
jobs away while running ones keep their service; thousands of open connections."""
import asyncio
import json
import os
import resource
import shutil
import time

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from conftest import MODELS

OPTS = [("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_receive_message_length", 2**31 - 1)]
JET = os.path.join(MODELS, "jet_tagger", "1", "model.onnx")


def add_variant(repo, name, dynamic_batching, max_batch_size=1024, instances=1):
    """A copy of jet_tagger under another name with its own scheduling config."""
    d = os.path.join(repo, name)
    os.makedirs(os.path.join(d, "1"))
    shutil.copy(JET, os.path.join(d, "1", "model.onnx"))
    cfg = {"max_batch_size": max_batch_size,
           "instance_group": [{"kind": "KIND_CPU", "count": instances}]}
    if dynamic_batching is not None:
        cfg["dynamic_batching"] = dynamic_batching
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)


def request(model, x, **params):
    req = service_pb2.ModelInferRequest(model_name=model)
    t = req.inputs.add(name="jet_features", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
    for k, v in params.items():
        if k == "priority":
            req.parameters[k].uint64_param = v
        else:
            req.parameters[k].int64_param = v
    return req


def stats(stub, model):
    s = stub.ModelStatistics(service_pb2.ModelStatisticsRequest(name=model), timeout=10)
    return s.model_stats[0]


def probabilities(resp, rows):
    return np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(rows, 5)


def test_flood_of_clients_is_batched_and_answered_exactly(server_factory):
    s = server_factory(lambda repo: add_variant(
        repo, "jet_batched", {"max_queue_delay_microseconds": 2000,
                              "preferred_batch_size": [64, 256]}, instances=2))
    n_clients, per_client = 1000, 3
    rng = np.random.default_rng(42)
    rows = rng.integers(1, 4, size=(n_clients, per_client))  # multi-row requests too
    xs = [[rng.standard_normal((int(r), 64)).astype(np.float32) for r in rr] for rr in rows]
    sess = ort.InferenceSession(JET)
    flat = np.concatenate([x for xx in xs for x in xx])
    want = sess.run(["probabilities"], {"jet_features": flat})[0]
    ch0 = grpc.insecure_channel(s.url, options=OPTS)
    stub0 = service_pb2_grpc.GRPCInferenceServiceStub(ch0)
    before = stats(stub0, "jet_batched")

    async def client(i, results):
        async with grpc.aio.insecure_channel(s.url, options=OPTS) as ch:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
            for k in range(per_client):
                resp = await stub.ModelInfer(request("jet_batched", xs[i][k]), timeout=120)
                results[i][k] = probabilities(resp, xs[i][k].shape[0])

    async def flood():
        results = [[None] * per_client for _ in range(n_clients)]
        await asyncio.gather(*(client(i, results) for i in range(n_clients)))
        return results

    results = asyncio.run(flood())
    off = 0
    for i in range(n_clients):
        for k in range(per_client):
            r = xs[i][k].shape[0]
            np.testing.assert_allclose(results[i][k], want[off:off + r], rtol=1e-4, atol=1e-5,
                                       err_msg=f"client {i} request {k}")
            off += r
    after = stats(stub0, "jet_batched")
    n_req = n_clients * per_client
    assert after.inference_stats.success.count - before.inference_stats.success.count == n_req
    assert after.inference_count - before.inference_count == int(rows.sum())
    execs = after.execution_count - before.execution_count
    mean_batch = (after.inference_count - before.inference_count) / execs
    assert mean_batch > 4, f"mean executed batch size {mean_batch:.2f}"
    ch0.close()


def slow_repo(repo):
    # Requests wait up to 5 s for a batch of 64 rows to form: a window to expire or cancel in.
    add_variant(repo, "jet_slow", {"max_queue_delay_microseconds": 5000000,
                                   "preferred_batch_size": [64],
                                   "default_queue_policy": {"allow_timeout_override": True,
                                                            "max_queue_size": 4}},
                max_batch_size=64)


@pytest.fixture
def slow(server_factory):
    s = server_factory(slow_repo)
    ch = grpc.insecure_channel(s.url, options=OPTS)
    yield s, service_pb2_grpc.GRPCInferenceServiceStub(ch)
    ch.close()


def x1():
    return np.ones((1, 64), np.float32)


def test_queue_timeout_answers_without_computing(slow):
    _, stub = slow
    before = stats(stub, "jet_slow")
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(request("jet_slow", x1(), timeout=100000), timeout=30)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "queue timeout" in e.value.details() and "not computed" in e.value.details()
    assert time.monotonic() - t0 < 4  # answered at its timeout, not when the batch formed
    after = stats(stub, "jet_slow")
    assert after.execution_count == before.execution_count
    assert after.inference_stats.fail.count == before.inference_stats.fail.count + 1


def wait_for(cond, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)  # polling the server's statistics, bounded by the deadline
    return False


def test_grpc_deadline_removes_request_before_compute(slow):
    _, stub = slow
    before = stats(stub, "jet_slow")
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(request("jet_slow", x1()), timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(lambda: stats(stub, "jet_slow").inference_stats.fail.count ==
                    before.inference_stats.fail.count + 1)
    assert stats(stub, "jet_slow").execution_count == before.execution_count


def pending(server, model):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(f'nv_inference_pending_request_count{{model="{model}"'):
            return int(line.split()[-1])
    return -1


def test_cancelled_call_is_removed_from_its_batch(slow):
    s, stub = slow
    before = stats(stub, "jet_slow")
    fut = stub.ModelInfer.future(request("jet_slow", x1()), timeout=30)
    assert wait_for(lambda: pending(s, "jet_slow") == 1)  # queued, waiting for its batch
    fut.cancel()
    assert wait_for(lambda: stats(stub, "jet_slow").inference_stats.fail.count ==
                    before.inference_stats.fail.count + 1)
    assert pending(s, "jet_slow") == 0
    assert stats(stub, "jet_slow").execution_count == before.execution_count


def test_full_queue_rejects_at_once(slow):
    s, stub = slow
    futs = [stub.ModelInfer.future(request("jet_slow", x1(), timeout=1000000), timeout=30)
            for _ in range(4)]
    assert wait_for(lambda: pending(s, "jet_slow") == 4)
    # the queue of jet_slow holds 4: a further request is refused immediately
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(request("jet_slow", x1()), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "maximum queue size" in e.value.details()
    assert time.monotonic() - t0 < 1.0
    for f in futs:  # each queued request ends by its 1 s queue timeout, not computed
        with pytest.raises(grpc.RpcError) as e:
            f.result()
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_admission_policy_turns_new_jobs_away(server_factory):
    s = server_factory(slow_repo, args=["--admission-queue-us=50000",
                                        "--admission-window-ms=200"])
    ch = grpc.insecure_channel(s.url, options=OPTS)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(ch)
    assert stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), timeout=10).models
    # requests that wait ~300 ms each in the queue push the average far above 50 ms
    for _ in range(3):
        with pytest.raises(grpc.RpcError):
            stub.ModelInfer(request("jet_slow", x1(), timeout=300000), timeout=30)

    def refused():
        try:
            stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), timeout=10)
            return False
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE
            assert "admission" in e.details()
            return True

    assert wait_for(refused, timeout=10)
    # running jobs keep their service
    resp = stub.ModelInfer(request("jet_tagger", x1()), timeout=30)
    assert probabilities(resp, 1).shape == (1, 5)
    ch.close()


def test_two_thousand_open_connections(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4500:
        pytest.skip(f"descriptor hard limit {hard} is too low for 2000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4500), hard))
    n = 2000

    async def main():
        chans = [grpc.aio.insecure_channel(server.url, options=[("grpc.use_local_subchannel_pool", 1)])
                 for _ in range(n)]
        try:
            stubs = [service_pb2_grpc.GRPCInferenceServiceStub(c) for c in chans]
            live = await asyncio.gather(*(st.ServerLive(service_pb2.ServerLiveRequest(),
                                                       timeout=120) for st in stubs))
            assert all(r.live for r in live)
            socks = sum(1 for fd in os.listdir(f"/proc/{server.proc.pid}/fd")
                        if os.readlink(f"/proc/{server.proc.pid}/fd/{fd}").startswith("socket:"))
            assert socks >= n, f"server holds {socks} sockets"
            # all 2000 connections are open at once; each still gets service
            resp = await asyncio.gather(*(st.ModelInfer(request("jet_tagger", x1()), timeout=120)
                                          for st in stubs[:200]))
            assert all(probabilities(r, 1).shape == (1, 5) for r in resp)
        finally:
            await asyncio.gather(*(c.close() for c in chans))

    asyncio.run(main())
