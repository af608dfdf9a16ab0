"""Compatibility with the real Triton Python client (tritonclient[grpc] from PyPI): every call a
user of Triton makes against the bundled models, with outputs checked against the committed
reference vectors (computed in float64 from the same weights and confirmed with onnxruntime)."""
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from conftest import assert_close, load_reference, reference_cases


def client(server):
    return grpcclient.InferenceServerClient(url=server.url)


def make_inputs(inputs):
    out = []
    for name, arr in inputs.items():
        i = grpcclient.InferInput(name, list(arr.shape), "FP32")
        i.set_data_from_numpy(arr)
        out.append(i)
    return out


def test_health_and_server_metadata(server):
    c = client(server)
    assert c.is_server_live()
    assert c.is_server_ready()
    md = c.get_server_metadata(as_json=True)
    assert md["name"] == "hltinfer"
    assert md["version"]
    # the protocol extensions first; then one "backend:<name>=<state>" string per backend
    # (the only free-form field of ServerMetadataResponse, see README "Backends")
    ext = md["extensions"]
    assert ext[:4] == ["model_configuration", "model_repository", "statistics", "parameters"]
    assert ext[4:] and all(e.startswith("backend:") for e in ext[4:]), ext
    assert any(e.startswith("backend:cpu=1 device (") for e in ext[4:]), ext


def test_model_ready(server):
    c = client(server)
    assert c.is_model_ready("jet_tagger")
    assert c.is_model_ready("facile", "1")
    assert not c.is_model_ready("no_such_model")  # as Triton: false, not an error
    assert not c.is_model_ready("jet_tagger", "2")
    with pytest.raises(InferenceServerException) as e:
        c.is_model_ready("jet_tagger", "latest")
    assert "StatusCode.INVALID_ARGUMENT" in str(e.value.status())


def test_model_metadata_has_batch_dim(server):
    c = client(server)
    md = c.get_model_metadata("jet_tagger", as_json=True)
    assert md["name"] == "jet_tagger"
    assert md["versions"] == ["1"]
    assert md["platform"] == "onnxruntime_onnx"
    assert md["inputs"] == [{"name": "jet_features", "datatype": "FP32", "shape": ["-1", "64"]}]
    assert [(o["name"], o["shape"]) for o in md["outputs"]] == [
        ("probabilities", ["-1", "5"]), ("logits", ["-1", "5"])]
    md = c.get_model_metadata("facile", as_json=True)
    assert md["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "15"]}]
    assert md["outputs"] == [{"name": "output", "datatype": "FP32", "shape": ["-1", "1"]}]


def test_model_config(server):
    c = client(server)
    cfg = c.get_model_config("jet_tagger", as_json=True)["config"]
    assert cfg["name"] == "jet_tagger"
    assert cfg["max_batch_size"] == 1024
    assert cfg["input"][0]["name"] == "jet_features"
    assert cfg["input"][0]["data_type"] == "TYPE_FP32"
    assert cfg["input"][0]["dims"] == ["64"]
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [64, 256]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    # facile's config.json has no input/output: completed from the ONNX graph as Triton does
    cfg = c.get_model_config("facile", as_json=True)["config"]
    assert cfg["max_batch_size"] == 16000
    assert cfg["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": ["15"]}]
    assert cfg["output"] == [{"name": "output", "data_type": "TYPE_FP32", "dims": ["1"]}]
    assert cfg["backend"] == "onnxruntime"


def test_repository_index(server):
    c = client(server)
    idx = c.get_model_repository_index(as_json=True)["models"]
    assert [(m["name"], m["version"], m["state"]) for m in idx] == [
        ("facile", "1", "READY"), ("jet_tagger", "1", "READY")]


@pytest.mark.parametrize("model", ["facile", "jet_tagger"])
def test_infer_matches_reference(server, model):
    c = client(server)
    for case in reference_cases(model):
        inputs, expected = load_reference(model, case)
        res = c.infer(model, make_inputs(inputs), request_id=f"{model}-{case}")
        assert res.get_response().id == f"{model}-{case}"
        assert res.get_response().model_version == "1"
        for name, exp in expected.items():
            got = res.as_numpy(name)
            assert got.shape == exp.shape, (case, name)
            assert_close(got, exp)


def test_infer_requested_output_subset(server):
    c = client(server)
    inputs, expected = load_reference("jet_tagger", "batch3")
    res = c.infer("jet_tagger", make_inputs(inputs),
                  outputs=[grpcclient.InferRequestedOutput("logits")])
    resp = res.get_response()
    assert [o.name for o in resp.outputs] == ["logits"]
    assert len(resp.raw_output_contents) == 1
    assert_close(res.as_numpy("logits"), expected["logits"])
    assert res.as_numpy("probabilities") is None


def test_async_infer(server):
    c = client(server)
    results = queue.Queue()
    cases = [("facile", k) for k in reference_cases("facile")] + \
            [("jet_tagger", k) for k in reference_cases("jet_tagger")]
    for model, case in cases:
        inputs, _ = load_reference(model, case)
        c.async_infer(model, make_inputs(inputs),
                      callback=lambda result, error, m=model, k=case: results.put((m, k, result, error)),
                      request_id=case)
    for _ in cases:
        model, case, res, err = results.get(timeout=60)
        assert err is None, err
        _, expected = load_reference(model, case)
        for name, exp in expected.items():
            assert_close(res.as_numpy(name), exp)


def test_statistics_grow_per_request(server):
    c = client(server)
    inputs, _ = load_reference("jet_tagger", "batch3")
    before = c.get_inference_statistics("jet_tagger", as_json=True)["model_stats"][0]
    assert before["name"] == "jet_tagger" and before["version"] == "1"
    n = 5
    for _ in range(n):
        c.infer("jet_tagger", make_inputs(inputs))
    after = c.get_inference_statistics("jet_tagger", as_json=True)["model_stats"][0]

    def count(s, key):
        return int(s["inference_stats"].get(key, {}).get("count", 0))

    assert count(after, "success") - count(before, "success") == n
    assert count(after, "queue") - count(before, "queue") == n
    assert int(after.get("inference_count", 0)) - int(before.get("inference_count", 0)) == 3 * n
    assert int(after.get("execution_count", 0)) - int(before.get("execution_count", 0)) == n
    for key in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert int(after["inference_stats"][key]["ns"]) > 0
    assert int(after["last_inference"]) > 0
    assert any(b["batch_size"] == "3" for b in after["batch_stats"])
    everything = c.get_inference_statistics(as_json=True)["model_stats"]
    assert {s["name"] for s in everything} == {"facile", "jet_tagger"}


def test_load_and_unload(server):
    c = client(server)
    inputs, expected = load_reference("facile", "n7")
    c.unload_model("facile")
    assert not c.is_model_ready("facile")
    with pytest.raises(InferenceServerException) as e:
        c.infer("facile", make_inputs(inputs))
    assert "StatusCode.UNAVAILABLE" in str(e.value.status())
    idx = {m["name"]: m for m in c.get_model_repository_index(as_json=True)["models"]}
    assert idx["facile"]["state"] == "UNAVAILABLE" and idx["facile"]["reason"] == "unloaded"
    c.load_model("facile")
    assert c.is_model_ready("facile")
    res = c.infer("facile", make_inputs(inputs))
    assert_close(res.as_numpy("output"), expected["output"])
    # loading a served model reloads it
    c.load_model("jet_tagger")
    assert c.is_model_ready("jet_tagger")
