"""Wire-contract check: our proto/*.proto against the descriptors tritonclient ships.

tritonclient's generated modules (service_pb2, model_config_pb2, and any other *_pb2 in
the package) carry Triton's descriptors. Clients encode against those, so every message,
enum and service they define in package `inference` (and `grpc.health.v1`, when shipped)
must exist in ours with identical field names, numbers, types, labels, presence, oneof
membership and map-ness, identical enum values, and identical RPC signatures. Anything
extra inside a shared message, enum or service is also reported: the contract is exact.

The source root comes from HLT_SOURCE_ROOT (set by meson) or this file's location; protoc
from PROTOC, then PATH, then /usr/bin/protoc.

Run: .venv/bin/python -m pytest tests/compat/test_proto_compat.py -q
"""

import importlib
import os
import pathlib
import shutil
import subprocess

import pytest
from google.protobuf import descriptor as gdesc
from google.protobuf import descriptor_pb2, descriptor_pool

OUR_PROTOS = ("inference.proto", "health.proto")
PACKAGES = ("inference", "grpc.health.v1")

_TYPE_NAMES = {
    v: k[len("TYPE_"):].lower()
    for k, v in vars(gdesc.FieldDescriptor).items()
    if k.startswith("TYPE_") and isinstance(v, int)
}


def _source_root():
    env = os.environ.get("HLT_SOURCE_ROOT")
    if env:
        return pathlib.Path(env).resolve()
    return pathlib.Path(__file__).resolve().parents[2]


def _protoc():
    for cand in (os.environ.get("PROTOC"), shutil.which("protoc"), "/usr/bin/protoc"):
        if cand and os.path.exists(cand):
            return cand
    pytest.fail("protoc not found (set PROTOC or install protobuf-compiler)")


# ---------------------------------------------------------------------------
# Loading both sides
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """A DescriptorPool holding our compiled proto files."""
    proto_dir = _source_root() / "proto"
    out = tmp_path_factory.mktemp("desc") / "ours.pb"
    cmd = [_protoc(), f"--proto_path={proto_dir}", "--include_imports",
           f"--descriptor_set_out={out}"] + [str(proto_dir / p) for p in OUR_PROTOS]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"protoc failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr}")
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:
        assert fdp.syntax == "proto3", f"{fdp.name}: syntax is {fdp.syntax!r}, want proto3"
        pool.AddSerializedFile(fdp.SerializeToString())
    return pool


def _tritonclient_files():
    """FileDescriptors from every *_pb2 module shipped inside tritonclient, in our packages."""
    try:
        import tritonclient
    except ImportError as exc:  # the reference is mandatory for this suite
        pytest.fail(f"tritonclient is not installed in this interpreter: {exc}")
    root = pathlib.Path(tritonclient.__file__).resolve().parent
    files = {}
    for path in sorted(root.rglob("*_pb2.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        modname = ".".join(rel.parts)
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue  # optional extras (cuda, http) not installed
        fd = getattr(mod, "DESCRIPTOR", None)
        if fd is not None and fd.package in PACKAGES:
            files[fd.name] = fd
    return files


@pytest.fixture(scope="module")
def reference():
    files = _tritonclient_files()
    assert files, "no tritonclient descriptors found in packages " + ", ".join(PACKAGES)
    return files


def _walk_messages(container):
    for m in container.message_types_by_name.values() if hasattr(
            container, "message_types_by_name") else container.nested_types:
        yield m
        yield from _walk_messages(m)


def _walk_enums(fd):
    yield from fd.enum_types_by_name.values()
    for m in _walk_messages(fd):
        yield from m.enum_types


def _ref_items(reference, package):
    files = [fd for fd in reference.values() if fd.package == package]
    msgs = {m.full_name: m for fd in files for m in _walk_messages(fd)}
    enums = {e.full_name: e for fd in files for e in _walk_enums(fd)}
    services = {s.full_name: s for fd in files for s in fd.services_by_name.values()}
    return msgs, enums, services


# ---------------------------------------------------------------------------
# Comparison (each returns a list of human-readable differences)
# ---------------------------------------------------------------------------


def _is_repeated(f):
    rep = getattr(f, "is_repeated", None)
    if rep is not None:
        return rep
    return f.label == gdesc.FieldDescriptor.LABEL_REPEATED


def _field_sig(f):
    typ = _TYPE_NAMES.get(f.type, str(f.type))
    if f.message_type is not None:
        typ += " " + f.message_type.full_name
    if f.enum_type is not None:
        typ += " " + f.enum_type.full_name
    oneof = f.containing_oneof.name if f.containing_oneof is not None else None
    is_map = bool(f.message_type is not None and f.message_type.GetOptions().map_entry)
    return {
        "number": f.number,
        "type": typ,
        "repeated": _is_repeated(f),
        "presence": f.has_presence,
        "oneof": oneof,
        "map": is_map,
    }


def _compare_message(ref, mine):
    diffs = []
    name = ref.full_name
    if ref.GetOptions().map_entry != mine.GetOptions().map_entry:
        diffs.append(f"{name}: map_entry theirs={ref.GetOptions().map_entry} "
                     f"ours={mine.GetOptions().map_entry}")
    rf = {f.name: f for f in ref.fields}
    mf = {f.name: f for f in mine.fields}
    for fname in sorted(rf.keys() - mf.keys()):
        diffs.append(f"{name}: missing field {fname} = {rf[fname].number} "
                     f"({_field_sig(rf[fname])['type']})")
    for fname in sorted(mf.keys() - rf.keys()):
        diffs.append(f"{name}: extra field {fname} = {mf[fname].number} (not in tritonclient)")
    for fname in sorted(rf.keys() & mf.keys()):
        a, b = _field_sig(rf[fname]), _field_sig(mf[fname])
        for key in a:
            if a[key] != b[key]:
                diffs.append(f"{name}.{fname}: {key} theirs={a[key]!r} ours={b[key]!r}")
    ro = {o.name: sorted(f.name for f in o.fields) for o in ref.oneofs}
    mo = {o.name: sorted(f.name for f in o.fields) for o in mine.oneofs}
    if ro != mo:
        diffs.append(f"{name}: oneofs theirs={ro} ours={mo}")
    return diffs


def _compare_enum(ref, mine):
    diffs = []
    rv = {v.name: v.number for v in ref.values}
    mv = {v.name: v.number for v in mine.values}
    for vname in sorted(rv.keys() - mv.keys()):
        diffs.append(f"{ref.full_name}: missing value {vname} = {rv[vname]}")
    for vname in sorted(mv.keys() - rv.keys()):
        diffs.append(f"{ref.full_name}: extra value {vname} = {mv[vname]}")
    for vname in sorted(rv.keys() & mv.keys()):
        if rv[vname] != mv[vname]:
            diffs.append(f"{ref.full_name}.{vname}: number theirs={rv[vname]} ours={mv[vname]}")
    return diffs


def _method_sig(m):
    return (m.input_type.full_name, m.output_type.full_name,
            "client_streaming" if m.client_streaming else "client_unary",
            "server_streaming" if m.server_streaming else "server_unary")


def _compare_service(ref, mine):
    diffs = []
    rm = {m.name: _method_sig(m) for m in ref.methods}
    mm = {m.name: _method_sig(m) for m in mine.methods}
    for n in sorted(rm.keys() - mm.keys()):
        diffs.append(f"{ref.full_name}: missing rpc {n}{rm[n]}")
    for n in sorted(mm.keys() - rm.keys()):
        diffs.append(f"{ref.full_name}: extra rpc {n}{mm[n]}")
    for n in sorted(rm.keys() & mm.keys()):
        if rm[n] != mm[n]:
            diffs.append(f"{ref.full_name}.{n}: theirs={rm[n]} ours={mm[n]}")
    return diffs


def _compare_package(reference, ours, package):
    msgs, enums, services = _ref_items(reference, package)
    diffs = []
    for full, ref in sorted(msgs.items()):
        try:
            mine = ours.FindMessageTypeByName(full)
        except KeyError:
            diffs.append(f"missing message {full}")
            continue
        diffs += _compare_message(ref, mine)
    for full, ref in sorted(enums.items()):
        try:
            mine = ours.FindEnumTypeByName(full)
        except KeyError:
            diffs.append(f"missing enum {full}")
            continue
        diffs += _compare_enum(ref, mine)
    for full, ref in sorted(services.items()):
        try:
            mine = ours.FindServiceByName(full)
        except KeyError:
            diffs.append(f"missing service {full}")
            continue
        diffs += _compare_service(ref, mine)
    return msgs, enums, services, diffs


def _report(diffs):
    return f"{len(diffs)} difference(s) from tritonclient:\n  " + "\n  ".join(diffs)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_reference_covers_the_inference_contract(reference):
    # Guards against silently comparing nothing (e.g. a tritonclient that moved its modules).
    msgs, enums, services = _ref_items(reference, "inference")
    assert "inference.GRPCInferenceService" in services, sorted(services)
    assert len(services["inference.GRPCInferenceService"].methods) >= 20
    for must in ("inference.ModelInferRequest", "inference.ModelConfig",
                 "inference.ModelStatistics", "inference.InferParameter"):
        assert must in msgs, f"{must} not in tritonclient's descriptors"
    assert "inference.DataType" in enums


def test_our_files_declare_the_expected_packages(ours):
    pkgs = {ours.FindFileByName(n).package for n in OUR_PROTOS}
    assert pkgs == {"inference", "grpc.health.v1"}, pkgs


def test_inference_package_matches_tritonclient(reference, ours):
    _, _, _, diffs = _compare_package(reference, ours, "inference")
    assert not diffs, _report(diffs)


def test_inference_service_has_the_twenty_rpcs(ours):
    svc = ours.FindServiceByName("inference.GRPCInferenceService")
    names = [m.name for m in svc.methods]
    assert len(names) == 20, names
    streaming = {m.name for m in svc.methods if m.client_streaming or m.server_streaming}
    assert streaming == {"ModelStreamInfer"}, streaming
    m = svc.FindMethodByName("ModelStreamInfer")
    assert m.client_streaming and m.server_streaming


# The standard grpc.health.v1 contract, used when neither tritonclient nor grpcio-health-checking
# ships its descriptors (tritonclient 2.73 does not).
_HEALTH_STANDARD = {
    "grpc.health.v1.HealthCheckRequest": {"service": (1, "string", None)},
    "grpc.health.v1.HealthCheckResponse": {
        "status": (1, "enum", "grpc.health.v1.HealthCheckResponse.ServingStatus")},
}
_HEALTH_ENUM = ("grpc.health.v1.HealthCheckResponse.ServingStatus",
                {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3})


def _health_reference(reference):
    if any(fd.package == "grpc.health.v1" for fd in reference.values()):
        return reference, "tritonclient"
    try:
        from grpc_health.v1 import health_pb2
    except ImportError:
        return None, "the documented standard"
    return {health_pb2.DESCRIPTOR.name: health_pb2.DESCRIPTOR}, "grpcio-health-checking"


def test_health_package_matches(reference, ours):
    ref, source = _health_reference(reference)
    if ref is not None:
        _, _, _, diffs = _compare_package(ref, ours, "grpc.health.v1")
        assert not diffs, f"(against {source}) " + _report(diffs)
        return
    diffs = []
    for full, fields in _HEALTH_STANDARD.items():
        try:
            mine = ours.FindMessageTypeByName(full)
        except KeyError:
            diffs.append(f"missing message {full}")
            continue
        got = {}
        for f in mine.fields:
            tname = (f.message_type or f.enum_type)
            got[f.name] = (f.number, _TYPE_NAMES[f.type], tname.full_name if tname else None)
            if _is_repeated(f) or f.containing_oneof is not None:
                diffs.append(f"{full}.{f.name}: must be a plain singular field")
        if got != fields:
            diffs.append(f"{full}: fields ours={got} standard={fields}")
    enum_name, values = _HEALTH_ENUM
    try:
        mine = ours.FindEnumTypeByName(enum_name)
        got = {v.name: v.number for v in mine.values}
        if got != values:
            diffs.append(f"{enum_name}: values ours={got} standard={values}")
    except KeyError:
        diffs.append(f"missing enum {enum_name}")
    try:
        svc = ours.FindServiceByName("grpc.health.v1.Health")
        sigs = {m.name: _method_sig(m) for m in svc.methods}
        req, resp = "grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse"
        want = {"Check": (req, resp, "client_unary", "server_unary")}
        if "Watch" in sigs:
            want["Watch"] = (req, resp, "client_unary", "server_streaming")
        if sigs != want:
            diffs.append(f"grpc.health.v1.Health: rpcs ours={sigs} standard={want}")
    except KeyError:
        diffs.append("missing service grpc.health.v1.Health")
    assert not diffs, f"(against {source}) " + "\n  ".join(diffs)
