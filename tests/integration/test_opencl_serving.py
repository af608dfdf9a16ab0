"""The example models served on the OpenCL backend through the real server: instance_group
KIND_GPU with parameters.gpu_backend = "opencl" (as Triton users write it), checked through
tritonclient against the same committed references as on the CPU. On a machine without a GPU
this runs on PoCL's CPU device, which is how CI proves the OpenCL path end to end. Skips with
the server's own reason when the server has no OpenCL backend or no OpenCL device."""
import re
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import assert_close, load_reference, reference_cases, set_gpu_group

MODELS = ("facile", "jet_tagger")


def gpu_config(backend="opencl", count=1, gpus=(0,)):
    def edit(repo):
        for name in MODELS:
            set_gpu_group(repo / name / "config.json", count, gpus, backend)
    return edit


def skip_without_opencl(server):
    """Skips unless the server's start-up line lists an OpenCL device."""
    # One round trip first: the server logs server_started just before it waits for SIGTERM,
    # and a SIGTERM in between can hit a thread that does not block it (see the report on
    # server/main.c); the fixture's stop would then see -15.
    assert grpcclient.InferenceServerClient(url=server.url).is_server_live()
    line = next((l for l in server.log if "event=backends" in l), "")
    if re.search(r"\bopencl: \d+ devices?\b", line):
        return
    why = re.search(r"\bopencl: unavailable \(([^)]*)\)", line)
    pytest.skip("server has no OpenCL device: " + why.group(1) if why
                else "server built without the OpenCL backend")


def index(server):
    c = grpcclient.InferenceServerClient(url=server.url)
    return {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}


def infer(c, model, inputs, outputs=None):
    ins = []
    for name, arr in inputs.items():
        i = grpcclient.InferInput(name, list(arr.shape), "FP32")
        i.set_data_from_numpy(arr)
        ins.append(i)
    outs = [grpcclient.InferRequestedOutput(o) for o in outputs] if outputs else None
    return c.infer(model, ins, outputs=outs)


@pytest.fixture
def ocl_server(server_factory):
    s = server_factory(extra=gpu_config())
    skip_without_opencl(s)
    return s


def test_models_are_placed_on_opencl(ocl_server):
    idx = index(ocl_server)
    for name in MODELS:
        assert idx[name]["state"] == "READY", idx[name]
        assert idx[name]["reason"] == "opencl:0 x1", idx[name]
    c = grpcclient.InferenceServerClient(url=ocl_server.url)
    cfg = c.get_model_config("jet_tagger", as_json=True)["config"]
    assert cfg["instance_group"][0]["kind"] == "KIND_GPU"


@pytest.mark.parametrize("model", MODELS)
def test_reference_outputs_on_opencl(ocl_server, model):
    c = grpcclient.InferenceServerClient(url=ocl_server.url)
    for case in reference_cases(model):
        inputs, expected = load_reference(model, case)
        res = infer(c, model, inputs)
        for name, want in expected.items():
            got = res.as_numpy(name)
            assert got.shape == want.shape, (model, case, name)
            assert_close(got, want)


def test_subset_of_outputs_and_batching_on_opencl(ocl_server):
    """Concurrent small requests: the dynamic batcher merges them into one OpenCL execute of
    changing batch sizes; each reply still carries exactly its own rows."""
    inputs, expected = load_reference("jet_tagger", "batch64")
    x, want = inputs["jet_features"], expected["probabilities"]
    errors = []

    def client(k):
        c = grpcclient.InferenceServerClient(url=ocl_server.url)
        for r in range(k, 64, 8):
            res = infer(c, "jet_tagger", {"jet_features": x[r:r + 1]}, ["probabilities"])
            try:
                assert res.as_numpy("logits") is None
                assert_close(res.as_numpy("probabilities"), want[r:r + 1])
            except AssertionError as e:
                errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_kind_gpu_without_backend_parameter(server_factory):
    """KIND_GPU alone runs on CUDA when it has a device, else on OpenCL; two instances, no
    `gpus` list: count instances on every device, as Triton does."""
    s = server_factory(extra=gpu_config(backend=None, count=2, gpus=None))
    skip_without_opencl(s)
    line = next(l for l in s.log if "event=backends" in l)
    if re.search(r"\bcuda: \d+ devices?\b", line):
        pytest.skip("a CUDA device takes KIND_GPU models here")
    idx = index(s)
    reason = idx["facile"]["reason"]
    assert reason.startswith("opencl:0 x2"), idx["facile"]
    c = grpcclient.InferenceServerClient(url=s.url)
    inputs, expected = load_reference("facile", "n16000")
    assert_close(infer(c, "facile", inputs).as_numpy("output"), expected["output"])
