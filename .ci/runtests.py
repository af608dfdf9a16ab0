"""Runs hltinfer's test suites and prints one closing summary.

For each build directory given: every test meson registered (criterion executables), with the
environment meson would give it; then pytest (tests/integration, tests/compat) against that
build's server. Prints each runner's closing line again at the end, then 'N passed, N failed'.
Exit status 1 if anything failed or crashed."""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
PYTEST = re.compile(r"^=*\s*(\d+ (?:passed|failed|error|skipped).*?) in [\d.]+s", re.M)


def run_meson_tests(build):
    tests = json.loads(subprocess.check_output(["meson", "introspect", "--tests", build], cwd=ROOT))
    passed = failed = 0
    lines = []
    for t in tests:
        env = dict(os.environ)
        env.update(t.get("env") or {})
        t0 = time.time()
        p = subprocess.run(t["cmd"], cwd=t.get("workdir") or os.path.join(ROOT, build), env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=max(60, t.get("timeout") or 0) * 3)
        out = p.stdout.decode(errors="replace")
        sys.stdout.write(out)
        m = None
        for m in SYNTH.finditer(out):
            pass
        if m:
            tested, ok, fail, crash = map(int, m.groups())
            passed += ok
            failed += fail + crash
            lines.append(f"[{build}] {t['name']}: {m.group(0)}")
        else:
            ok = p.returncode == 0
            passed += ok
            failed += not ok
            lines.append(f"[{build}] {t['name']}: exit {p.returncode}")
        if p.returncode != 0 and not (m and int(m.group(3)) + int(m.group(4)) > 0):
            failed += 1  # a nonzero exit without counted failures (ASan leak report, crash)
            lines.append(f"[{build}] {t['name']}: exited {p.returncode}")
        print(f"--- {t['name']} ({build}) {time.time() - t0:.1f}s rc={p.returncode}", flush=True)
    return passed, failed, lines


def run_pytest(build):
    env = dict(os.environ)
    env["HLT_BUILD_ROOT"] = os.path.join(ROOT, build)
    env["HLT_SOURCE_ROOT"] = ROOT
    if "asan" in build:
        env["ASAN_OPTIONS"] = "detect_leaks=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/integration", "tests/compat"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode(errors="replace")
    sys.stdout.write(out)
    summary = ""
    for m in PYTEST.finditer(out):
        summary = m.group(1)
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", summary))
    passed = counts.get("passed", 0)
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    if p.returncode not in (0, 5) and failed == 0:
        failed = 1
    return passed, failed, [f"[{build}] pytest: {summary or 'no summary, rc=%d' % p.returncode}"]


def main():
    builds = sys.argv[1:] or ["build"]
    total_p = total_f = 0
    closing = []
    for b in builds:
        for fn in (run_meson_tests, run_pytest):
            p, f, lines = fn(b)
            total_p += p
            total_f += f
            closing += lines
    print("\n==== summary ====")
    for line in closing:
        print(line)
    print(f"{total_p} passed, {total_f} failed", flush=True)
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
