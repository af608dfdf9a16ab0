#!/usr/bin/python3
"""Summaries of the benchmark CSVs (medians over repetitions, targets, Markdown reports).

Called by run_floor.sh and run_batching.sh; standard library only. Rows come from
hltinfer-bench --csv (and h2load rows in the same format); the label is "r<rep>:<target>",
e.g. "r2:server". Subcommands:
  floor-targets CSV                                  -> "<name> PASS|MISS" lines
  floor-report CSV MACHINE_MD LOADAVG OUTDIR         -> floor.md on stdout
  batching-report CSV MACHINE_MD LOADAVG MEMORY_TXT OUTDIR -> batching.md on stdout
"""
import csv
import datetime
import os
import statistics
import sys

NUM = ["batch", "concurrency", "clients", "requests", "errors", "duration_s", "throughput",
       "rows_per_s", "p50_us", "p90_us", "p95_us", "p99_us", "mean_us", "max_us",
       "server_queue_us", "server_compute_input_us", "server_compute_infer_us",
       "server_compute_output_us", "mean_batch", "server_total_us", "client_cpu_us",
       "server_cpu_us", "request_bytes", "p50_vs_live", "throughput_vs_live"]


def load(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rep, _, target = r["label"].partition(":")
            r["rep"], r["target"] = rep, target
            for k in NUM:
                v = r.get(k, "")
                r[k] = float(v) if v not in ("", None) else None
            rows.append(r)
    return rows


class Group:
    """The repetitions of one measurement (same target, mode, model, batch, concurrency)."""

    def __init__(self, rows):
        self.rows = rows

    def med(self, k):
        v = [r[k] for r in self.rows if r[k] is not None]
        return statistics.median(v) if v else None

    def span(self, k):
        v = [r[k] for r in self.rows if r[k] is not None]
        return (min(v), max(v)) if v else (None, None)

    def errors(self):
        return sum(r["errors"] or 0 for r in self.rows)

    def __len__(self):
        return len(self.rows)


def pick(rows, target, mode, model="", batch=None, conc=None):
    sel = [r for r in rows if r["target"] == target and r["mode"] == mode and
           (r["model"] or "") == model and (batch is None or r["batch"] == batch) and
           (conc is None or r["concurrency"] == conc)]
    return Group(sel)


def fmt(v, prec=0, unit=""):
    if v is None:
        return "–"
    if prec == 0:
        return f"{v:,.0f}".replace(",", " ") + unit
    return f"{v:,.{prec}f}".replace(",", " ") + unit


def fmt_span(g, k, prec=0):
    m = g.med(k)
    lo, hi = g.span(k)
    if m is None:
        return "–"
    if len(g) < 2:
        return fmt(m, prec)
    return f"{fmt(m, prec)} ({fmt(lo, prec)}–{fmt(hi, prec)})"


def ratio(a, b):
    return a / b if a is not None and b else None


# ---- floor ----

def floor_targets(rows):
    """[(name, description, measured text, target text, ok)]"""
    out = []
    inf = pick(rows, "server", "infer", "jet_tagger", 1, 1)
    flo = pick(rows, "server", "floor", "", 1, 1)
    r = inf.med("p50_vs_live")
    out.append(("infer_c1_latency",
                "small ModelInfer (jet_tagger, batch 1, bundled config) p50 at c=1 vs ServerLive "
                "p50 (same run)",
                f"{fmt(r, 2)}x ({fmt(inf.med('p50_us'), 1)} µs vs {fmt(flo.med('p50_us'), 1)} µs)",
                "≤ 1.5x", r is not None and r <= 1.5))
    inf = pick(rows, "server-nobatch", "infer", "jet_tagger", 1, 1)
    flo = pick(rows, "server-nobatch", "floor", "", 1, 1)
    r = inf.med("p50_vs_live")
    if len(inf):
        out.append(("infer_c1_latency_nobatch",
                    "(diagnostic) the same with dynamic_batching removed from jet_tagger's config",
                    f"{fmt(r, 2)}x ({fmt(inf.med('p50_us'), 1)} µs vs "
                    f"{fmt(flo.med('p50_us'), 1)} µs)", "≤ 1.5x", r is not None and r <= 1.5))
    inf = pick(rows, "server", "infer", "jet_tagger", 1, 64)
    flo = pick(rows, "server", "floor", "", 1, 64)
    r = inf.med("throughput_vs_live")
    out.append(("infer_c64_throughput",
                "small-model (jet_tagger, batch 1) throughput at c=64 vs ServerLive's (same run)",
                f"{fmt(r * 100 if r is not None else None, 0)}% ({fmt(inf.med('throughput'))} vs "
                f"{fmt(flo.med('throughput'))} calls/s)", "≥ 60%", r is not None and r >= 0.6))
    best, best_c = None, None
    for c in (1, 64):
        g = pick(rows, "server", "infer", "facile", 16000, c)
        t, b = g.med("throughput"), g.med("request_bytes")
        if t is not None and b is not None and (best is None or t * b > best):
            best, best_c = t * b, c
    out.append(("facile_input_rate",
                "FACILE 16000 channels (960 KB in): effective input rate, best of c=1 and c=64",
                f"{fmt(best / 1e9 if best else None, 3)} GB/s (c={best_c})" if best else "–",
                "≥ 1.5 GB/s", best is not None and best >= 1.5e9))
    srv = pick(rows, "server", "live", "", 1, 64)
    ech = pick(rows, "echo", "live", "", 1, 64)
    r = ratio(srv.med("throughput"), ech.med("throughput"))
    out.append(("live_vs_echo",
                "ServerLive throughput at c=64: hltinfer-server vs bare gRPC core (hltinfer-echo), "
                "through hltinfer-bench",
                f"{fmt(r * 100 if r is not None else None, 0)}% ({fmt(srv.med('throughput'))} vs "
                f"{fmt(ech.med('throughput'))} calls/s)", "≥ 70%", r is not None and r >= 0.7))
    srv = pick(rows, "server", "h2load-live", "", 1, 64)
    ech = pick(rows, "echo", "h2load-live", "", 1, 64)
    r = ratio(srv.med("throughput"), ech.med("throughput"))
    if len(srv):
        out.append(("live_vs_echo_h2load",
                    "(diagnostic) the same through h2load -c1 -m64, a client cheaper than the "
                    "server, so the server is the bottleneck",
                    f"{fmt(r * 100 if r is not None else None, 0)}% ({fmt(srv.med('throughput'))} "
                    f"vs {fmt(ech.med('throughput'))} calls/s)", "≥ 70%",
                    r is not None and r >= 0.7))
    return out


def cmd_floor_targets(path):
    for name, _, _, _, ok in floor_targets(load(path)):
        print(name, "PASS" if ok else "MISS")


def header(title, script, machine_md, loadavg):
    # REPORT_DATE: when a report is regenerated from an earlier run's CSV (e.g. after editing
    # its notes), the date of that run.
    now = os.environ.get("REPORT_DATE") or datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"# {title}", "",
             f"Generated by `{script}` on {now}. Medians of the repetitions, with (min–max) "
             "where useful; every raw run is in the CSV beside this file. Client and server run "
             "on the same 2 cores, so every throughput is a whole-machine number, and the "
             "ratios (measured side by side, minutes apart) matter more than absolute values.",
             "", "## Machine", ""]
    lines += open(machine_md).read().rstrip().splitlines()
    if loadavg and os.path.exists(loadavg):
        la = "; ".join(l.strip() for l in open(loadavg) if l.strip())
        lines.append(f"- Load average (1/5/15 min) before each repetition: {la}. Other "
                     "engineers' builds and tests share this machine, so absolute numbers carry "
                     "their noise; the spreads show how much.")
    lines.append("")
    return lines


def include_notes(lines, path, title):
    if os.path.exists(path):
        lines += ["", f"## {title}", ""]
        lines += open(path).read().rstrip().splitlines()


def profiles(lines, outdir, prefix, exclude=None, title="Profiles of the missed targets"):
    files = sorted(f for f in os.listdir(outdir) if f.startswith(prefix) and f.endswith(".txt")
                   and not (exclude and f.startswith(exclude)))
    if not files:
        return
    lines += ["", f"## {title}", "",
              "`perf record -g` on the server during a 10 s load (self time, top symbols; full "
              "extracts in the files named)."]
    for f in files:
        lines += ["", f"### {f}", "", "```"]
        body = [l.rstrip() for l in open(os.path.join(outdir, f))]
        self_part = []
        on = False
        for l in body:
            if l.startswith("# --- perf report --stdio --no-children"):
                on = True
                continue
            if l.startswith("# --- perf report --stdio --children"):
                break
            if on:
                self_part.append(l)
        lines += (self_part or body)[:25]
        lines.append("```")


def cmd_floor_report(path, machine_md, loadavg, outdir):
    rows = load(path)
    L = header("hltinfer: the transport floor and the issue's targets", "benchmarks/run_floor.sh",
               machine_md, loadavg)
    L += ["## Targets", "", "| target | measured (median) | goal | status |", "|---|---|---|---|"]
    for _, desc, meas, goal, ok in floor_targets(rows):
        L.append(f"| {desc} | {meas} | {goal} | {'PASS' if ok else '**MISS**'} |")

    L += ["", "## ServerLive: bare gRPC core (hltinfer-echo) vs hltinfer-server", "",
          "hltinfer-bench: libhltinfer's asynchronous path, one client (one connection, one "
          "completion thread). h2load: nghttp2's load generator replaying a gRPC-framed "
          "ServerLive on one connection (`-c1 -mN`); it reports mean and max latency only. CPU "
          "per call is process CPU time (all threads) over the window divided by the calls.", "",
          "| client | server | concurrency | calls/s | p50 µs | p99 µs | mean µs | server CPU "
          "µs/call | client CPU µs/call | errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    for tool, mode in (("hltinfer-bench", "live"), ("h2load", "h2load-live")):
        for c in (1, 64):
            for tgt in ("echo", "server"):
                g = pick(rows, tgt, mode, "", 1, c)
                if not len(g):
                    continue
                name = "hltinfer-echo" if tgt == "echo" else "hltinfer-server"
                L.append(f"| {tool} | {name} | {c} | {fmt_span(g, 'throughput')} | "
                         f"{fmt(g.med('p50_us'), 1)} | {fmt(g.med('p99_us'), 1)} | "
                         f"{fmt(g.med('mean_us'), 1)} | {fmt(g.med('server_cpu_us'), 1)} | "
                         f"{fmt(g.med('client_cpu_us'), 1)} | {g.errors():.0f} |")
    for mode, tool in (("live", "hltinfer-bench"), ("h2load-live", "h2load")):
        for c in (1, 64):
            s = pick(rows, "server", mode, "", 1, c).med("throughput")
            e = pick(rows, "echo", mode, "", 1, c).med("throughput")
            r = ratio(s, e)
            if r is not None:
                L.append(f"\n{tool}, c={c}: hltinfer-server ServerLive throughput = "
                         f"{r * 100:.0f}% of the bare gRPC-core echo's.")

    L += ["", "## ModelInfer", "",
          "Each run also measured ServerLive on the same server right after it (the floor "
          "columns). Server split: ModelStatistics deltas over the window, per request "
          "(perf_analyzer's arithmetic). `bundled`: models/ as committed (jet_tagger: "
          "dynamic_batching, preferred [64, 256], max_queue_delay 100 µs); `no batching`: the "
          "same with dynamic_batching removed from jet_tagger's config.", "",
          "| model | rows/request | config | conc | calls/s | rows/s | input MB/s | p50 µs | "
          "p99 µs | mean µs | server queue µs | compute in/infer/out µs | mean batch | server "
          "CPU µs/call | floor p50 µs | floor calls/s | p50 / floor | calls/s / floor |",
          "|" + "---|" * 18]
    for model, batch in (("jet_tagger", 1), ("facile", 16000)):
        for tgt, cfg in (("server", "bundled"), ("server-nobatch", "no batching")):
            for c in (1, 64):
                g = pick(rows, tgt, "infer", model, batch, c)
                if not len(g):
                    continue
                f = pick(rows, tgt, "floor", "", 1, c)
                rb = g.med("request_bytes") or 0
                mbs = g.med("throughput") * rb / 1e6 if g.med("throughput") else None
                L.append(
                    f"| {model} | {batch} | {cfg} | {c} | {fmt_span(g, 'throughput')} | "
                    f"{fmt(g.med('rows_per_s'))} | {fmt(mbs, 1)} | {fmt_span(g, 'p50_us', 1)} | "
                    f"{fmt(g.med('p99_us'), 1)} | {fmt(g.med('mean_us'), 1)} | "
                    f"{fmt(g.med('server_queue_us'), 1)} | "
                    f"{fmt(g.med('server_compute_input_us'), 1)} / "
                    f"{fmt(g.med('server_compute_infer_us'), 1)} / "
                    f"{fmt(g.med('server_compute_output_us'), 1)} | "
                    f"{fmt(g.med('mean_batch'), 2)} | {fmt(g.med('server_cpu_us'), 1)} | "
                    f"{fmt(f.med('p50_us'), 1)} | {fmt(f.med('throughput'))} | "
                    f"{fmt(g.med('p50_vs_live'), 2)} | {fmt(g.med('throughput_vs_live'), 2)} |")
    g = pick(rows, "server", "infer", "facile", 16000, 1)
    if len(g) and g.med("server_compute_infer_us") is not None:
        comp = sum(g.med(k) or 0 for k in ("server_compute_input_us", "server_compute_infer_us",
                                          "server_compute_output_us"))
        rest = g.med("p50_us") - comp
        rb = g.med("request_bytes") or 0
        L += ["", f"FACILE at c=1: of the {fmt(g.med('p50_us'), 0)} µs p50, the model's compute "
              f"(compute_input + compute_infer + compute_output) is {fmt(comp, 0)} µs; the "
              f"remaining {fmt(rest, 0)} µs (client encode, transport both ways, decode, queue, "
              f"response) would move the 960 KB at {fmt(rb / rest / 1e3 if rest > 0 else None, 2)}"
              " GB/s if the compute cost nothing."]
    profiles(L, outdir, "perf-", exclude="perf-batching")
    include_notes(L, os.path.join(outdir, "floor-notes.md"),
                  "What limits the missed targets (hand-written from the profiles above)")
    print("\n".join(L))


# ---- batching ----

def cmd_batching_report(path, machine_md, loadavg, memory_txt, outdir):
    rows = load(path)
    concs = sorted({int(r["concurrency"]) for r in rows})
    L = header("hltinfer: dynamic batching and server memory", "benchmarks/run_batching.sh",
               machine_md, loadavg)
    L += ["## jet_tagger, batch 1 per request: batching off vs on, against ServerLive", "",
          "`off`: a temporary copy of models/ with dynamic_batching removed from jet_tagger's "
          "config; `on`: the bundled config (preferred_batch_size [64, 256], "
          "max_queue_delay_microseconds 100). ServerLive measured on the same server, same "
          "concurrency, same client. Mean batch = Δinference_count / Δexecution_count. "
          "p99 bound = max_queue_delay (100 µs) + one batch's compute (compute_input + "
          "compute_infer + compute_output of the run, per request = per batch) + ServerLive's "
          "p99 at that concurrency.", "",
          "| conc | off: calls/s | off: p50 µs | off: p99 µs | off: batch | on: calls/s | on: p50 µs "
          "| on: p99 µs | on: batch | on: queue µs | on: compute µs | ServerLive calls/s | "
          "ServerLive p99 µs | on / ServerLive | on / off | p99 bound µs | p99 ≤ bound |",
          "|" + "---|" * 17]
    for c in concs:
        off = pick(rows, "off", "infer", "jet_tagger", 1, c)
        on = pick(rows, "on", "infer", "jet_tagger", 1, c)
        lv = pick(rows, "on", "floor", "", 1, c)
        if not len(on) and not len(off):
            continue
        comp = None
        if on.med("server_compute_infer_us") is not None:
            comp = sum(on.med(k) or 0 for k in ("server_compute_input_us",
                                                "server_compute_infer_us",
                                                "server_compute_output_us"))
        bound = 100 + comp + lv.med("p99_us") if comp is not None and lv.med("p99_us") else None
        p99 = on.med("p99_us")
        okb = "yes" if bound and p99 is not None and p99 <= bound else "**no**" if bound else "–"
        r_live = ratio(on.med("throughput"), lv.med("throughput"))
        r_off = ratio(on.med("throughput"), off.med("throughput"))
        L.append(f"| {c} | {fmt_span(off, 'throughput')} | {fmt(off.med('p50_us'), 1)} | "
                 f"{fmt(off.med('p99_us'), 1)} | {fmt(off.med('mean_batch'), 2)} | "
                 f"{fmt_span(on, 'throughput')} | {fmt(on.med('p50_us'), 1)} | {fmt(p99, 1)} | "
                 f"{fmt(on.med('mean_batch'), 2)} | {fmt(on.med('server_queue_us'), 1)} | "
                 f"{fmt(comp, 1)} | {fmt_span(lv, 'throughput')} | {fmt(lv.med('p99_us'), 1)} | "
                 f"{fmt(r_live * 100 if r_live else None, 0)}% | {fmt(r_off, 2)}x | "
                 f"{fmt(bound, 0)} | {okb} |")
    sl = [c for c in concs if len(pick(rows, "on-slots1024", "infer", "jet_tagger", 1, c))]
    if sl:
        L += ["", "Batching on, server started with `--grpc-infer-slots=1024` (default 64 pre-posted "
              "ModelInfer slots; calls beyond them wait in gRPC core's pending list):", "",
              "| conc | calls/s | p50 µs | p99 µs | mean batch | server CPU µs/call | ServerLive "
              "calls/s | vs ServerLive | vs default slots |", "|---|---|---|---|---|---|---|---|---|"]
        for c in sl:
            g = pick(rows, "on-slots1024", "infer", "jet_tagger", 1, c)
            lv = pick(rows, "on-slots1024", "floor", "", 1, c)
            d = pick(rows, "on", "infer", "jet_tagger", 1, c)
            r1 = ratio(g.med("throughput"), lv.med("throughput"))
            r2 = ratio(g.med("throughput"), d.med("throughput"))
            L.append(f"| {c} | {fmt_span(g, 'throughput')} | {fmt(g.med('p50_us'), 1)} | "
                     f"{fmt(g.med('p99_us'), 1)} | {fmt(g.med('mean_batch'), 2)} | "
                     f"{fmt(g.med('server_cpu_us'), 1)} | {fmt_span(lv, 'throughput')} | "
                     f"{fmt(r1 * 100 if r1 else None, 0)}% | {fmt(r2, 2)}x |")
    hi = [c for c in concs if c >= 256]
    if hi:
        L.append("")
        for c in hi:
            on = pick(rows, "on", "infer", "jet_tagger", 1, c)
            lv = pick(rows, "on", "floor", "", 1, c)
            r = ratio(on.med("throughput"), lv.med("throughput"))
            st = "PASS" if r is not None and r >= 0.8 else "**MISS**"
            L.append(f"- Target, c={c}: batched throughput ≥ 80% of ServerLive's: "
                     f"{fmt(r * 100 if r is not None else None, 0)}% → {st}")
    errs = sum(r["errors"] or 0 for r in rows)
    L.append(f"- Failed calls inside the measured windows, all runs: {errs:.0f}")
    if os.path.exists(memory_txt):
        L += ["", "## Server memory (VmRSS)", ""]
        L += open(memory_txt).read().rstrip().splitlines()
    profiles(L, outdir, "perf-batching",
             title="Profile of the batched server at the highest concurrency")
    include_notes(L, os.path.join(outdir, "batching-notes.md"),
                  "Findings (hand-written from the runs and profiles above)")
    print("\n".join(L))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "floor-targets":
        cmd_floor_targets(*args)
    elif cmd == "floor-report":
        cmd_floor_report(*args)
    elif cmd == "batching-report":
        cmd_batching_report(*args)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
