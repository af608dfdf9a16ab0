#!/usr/bin/env bash
# run_batching.sh: what dynamic batching buys, and what the server's memory costs.
#
# Run from the repository root:  benchmarks/run_batching.sh [--reps N] [--duration S]
#                                    [--connections N] [--no-perf] [--quiet-load L] [--quiet-wait S]
# 1. jet_tagger, batch 1 per request, at concurrency 1, 4, 16, 64, 256, 1024 through
#    hltinfer-bench, with batching OFF (a temporary copy of models/ whose jet_tagger config has
#    no dynamic_batching) and ON (the bundled config: preferred sizes [64, 256],
#    max_queue_delay 100 us), each ON run followed by ServerLive on the same server at the same
#    concurrency; N repetitions (default 3), medians. At concurrency >= 256 also ON with
#    --grpc-infer-slots=1024 (as many pre-posted ModelInfer slots as calls in flight).
# 2. Server memory (VmRSS / VmHWM of a freshly started server): idle; with N open client
#    connections (default 2000, held by hltinfer-conn-hold); with a burst of 1024 queued
#    FACILE requests of 16000 rows (~960 KB each) against its single instance.
# Writes benchmarks/results/batching.csv (every raw run) and batching.md; with perf (unless
# --no-perf) a profile of the batched run at the highest concurrency. Bounded (every command
# has a timeout; ~10 minutes in all); kills only the PIDs it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3
DUR=5
WARM=1
NCONN=2000
PERF=1
QUIET_LOAD=2.5 # before each repetition, wait up to QUIET_WAIT s for a lower load average
QUIET_WAIT=60
CONCS=(1 4 16 64 256 1024)
while [[ $# -gt 0 ]]; do
    case $1 in
    --reps) REPS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --connections) NCONN=$2; shift 2 ;;
    --no-perf) PERF=0; shift ;;
    --quiet-load) QUIET_LOAD=$2; shift 2 ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source benchmarks/lib.sh
trap cleanup EXIT
trap 'exit 130' INT TERM

OUT=benchmarks/results
mkdir -p "$OUT"
CSV=$OUT/batching.csv
rm -f "$CSV" "$OUT"/perf-batching*.txt
LOADS=$TMP_DIR/loadavg.txt
MEM=$TMP_DIR/memory.md

build_if_needed

# ---- 1. throughput and latency, batching off / on ----
OFF_REPO=$(repo_without_batching jet_tagger)
start_server ON_PID ON_PORT models
start_server OFF_PID OFF_PORT "$OFF_REPO"
# Batching on with as many pre-posted ModelInfer slots as calls in flight (default 64): above
# that, gRPC core parks the calls in its pending list (reference pitfall 15).
start_server SL_PID SL_PORT models --grpc-infer-slots=1024
log "batching on: pid $ON_PID port $ON_PORT; off: pid $OFF_PID port $OFF_PORT; on with 1024 slots: pid $SL_PID port $SL_PORT"
B=(--duration="$DUR" --warmup="$WARM" --model=jet_tagger --batch=1 --timeout-ms=30000)
for r in $(seq "$REPS"); do
    wait_quiet "$QUIET_LOAD" "$QUIET_WAIT"
    log "repetition $r of $REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "rep $r: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"
    for c in "${CONCS[@]}"; do
        log "jet_tagger c=$c: batching off, then on (+ ServerLive)"
        bench "$CSV" "r$r:off" "$OFF_PORT" "$OFF_PID" --concurrency="$c" --no-floor "${B[@]}"
        bench "$CSV" "r$r:on" "$ON_PORT" "$ON_PID" --concurrency="$c" "${B[@]}"
        if ((c >= 256)); then
            log "jet_tagger c=$c: batching on, --grpc-infer-slots=1024 (+ ServerLive)"
            bench "$CSV" "r$r:on-slots1024" "$SL_PORT" "$SL_PID" --concurrency="$c" "${B[@]}"
        fi
    done
done
if [[ $PERF -eq 1 ]]; then
    top=${CONCS[-1]}
    log "profiling the batched server at c=$top"
    perf_profile "$ON_PID" "$OUT/perf-batching-on-c$top.txt" 8 -- "$BENCH" \
        --url=127.0.0.1:$ON_PORT --model=jet_tagger --concurrency="$top" --duration=10 \
        --warmup=0 --no-floor --quiet --timeout-ms=30000
fi
stop_pid "$ON_PID"
stop_pid "$OFF_PID"
stop_pid "$SL_PID"

# ---- 2. memory, on a fresh server ----
start_server M_PID M_PORT models
sleep 1
# A first call of each kind, so lazily allocated state is in the idle figure.
timeout 60 "${NICE[@]}" "$BENCH" --url=127.0.0.1:$M_PORT --model=jet_tagger --requests=10 --warmup=0 \
    --quiet >/dev/null 2>&1 || true
sleep 0.5
idle=$(rss_kb "$M_PID")
log "idle RSS ${idle} kB; opening $NCONN connections"
# conn-hold holds its connections until its stdin (a FIFO held open here as fd 7) closes.
mkfifo "$TMP_DIR/hold.in"
timeout 300 "${NICE[@]}" "$CONN_HOLD" "$M_PORT" "$NCONN" 60 <"$TMP_DIR/hold.in" >"$TMP_DIR/hold.out" \
    2>"$TMP_DIR/hold.err" &
HOLD_PID=$!
STARTED_PIDS+=("$HOLD_PID")
exec 7>"$TMP_DIR/hold.in"
for _ in $(seq 1200); do
    grep -q '^ready' "$TMP_DIR/hold.out" 2>/dev/null && break
    kill -0 "$HOLD_PID" 2>/dev/null || break
    sleep 0.1
done
ready=$(awk '/^ready/ {print $2}' "$TMP_DIR/hold.out" 2>/dev/null || true)
sleep 1
conn_rss=$(rss_kb "$M_PID")
server_fds=$(ls "/proc/$M_PID/fd" | wc -l)
exec 7>&- # closes conn-hold's stdin: it closes its connections and exits
wait "$HOLD_PID" 2>/dev/null || true
sleep 1
after_conn=$(rss_kb "$M_PID")
log "with ${ready:-0} connections: RSS ${conn_rss} kB (server fds $server_fds); after closing ${after_conn} kB"

hwm0=$(awk '/^VmHWM:/ {print $2}' "/proc/$M_PID/status")
base=$(rss_kb "$M_PID")
log "burst: 1024 FACILE 16000-row requests in flight against one instance"
BURST_OUT=$TMP_DIR/burst.out
timeout 200 "${NICE[@]}" "$BENCH" --url=127.0.0.1:$M_PORT --model=facile --batch=16000 --concurrency=1024 \
    --duration=4 --warmup=2 --timeout-ms=60000 --no-floor --label=burst \
    --csv="$TMP_DIR/burst.csv" >"$BURST_OUT" 2>&1 &
BURST_PID=$!
STARTED_PIDS+=("$BURST_PID")
peak=$base
while kill -0 "$BURST_PID" 2>/dev/null; do
    v=$(rss_kb "$M_PID")
    ((v > peak)) && peak=$v
    sleep 0.05
done
wait "$BURST_PID" || log "the burst run reported errors (see below)"
sed 's/^/    /' "$BURST_OUT" >&2
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$M_PID/status")
after_burst=$(rss_kb "$M_PID")
queue_us=$(awk -F, 'NR==2 {print $18}' "$TMP_DIR/burst.csv" 2>/dev/null || true)
msg_bytes=$(awk -F, 'NR==2 {print $26}' "$TMP_DIR/burst.csv" 2>/dev/null || true)

# The job struct the server keeps per queued request (embedded in its call state).
job_size=unknown
if cc -std=gnu11 -D_GNU_SOURCE -Iserver -Iinclude -I"$BUILD/proto" -Iproto -x c - \
    -o "$TMP_DIR/jobsize" >/dev/null 2>&1 <<'EOF'; then
#include "infer_job.h"
#include <stdio.h>
int main(void) { printf("%zu\n", sizeof(infer_job_t)); return 0; }
EOF
    job_size=$("$TMP_DIR/jobsize")
fi

{
    echo "A fresh hltinfer-server (bundled models/) on 127.0.0.1, VmRSS from /proc/PID/status."
    echo "Kernel socket buffers are not part of a process's RSS, so the per-connection figure is"
    echo "what the server process itself keeps (gRPC core's transport and HTTP/2 state)."
    echo
    echo "| state | VmRSS kB | Δ vs idle kB | per unit |"
    echo "|---|---|---|---|"
    echo "| idle (models loaded, one call served) | $idle | 0 | |"
    if [[ -n ${ready:-} && ${ready:-0} -gt 0 ]]; then
        echo "| $ready open client connections (one ServerLive each, held; server fds $server_fds) | $conn_rss | $((conn_rss - idle)) | $(((conn_rss - idle) * 1024 / ready)) bytes per connection |"
    else
        echo "| $NCONN connections: hltinfer-conn-hold did not get ready ($(head -c 300 "$TMP_DIR/hold.err" | tr '\n' ' ')) | | | |"
    fi
    echo "| after the connections closed | $after_conn | $((after_conn - idle)) | |"
    echo "| burst: 1024 FACILE requests of 16000 rows in flight (peak VmRSS sampled every 50 ms) | $peak | $((peak - base)) vs before the burst | $(((peak - base) * 1024 / 1024)) bytes per request in flight (measured: Δ kB × 1024 B / 1024 requests) |"
    echo "| VmHWM after the burst (was $hwm0 before) | $hwm | $((hwm - hwm0)) | |"
    echo "| after the burst | $after_burst | $((after_burst - idle)) | (malloc keeps freed memory: M_TRIM_THRESHOLD is 1 GiB) |"
    echo
    if [[ -n $msg_bytes ]]; then
        echo "Computed per queued FACILE request: the request message (~$msg_bytes bytes of"
        echo "tensor data plus a few dozen bytes of protobuf framing, kept once in one contiguous"
        echo "slice: the frontend joins a multi-slice message with one copy, the codec then"
        echo "references the tensors in it) + the job struct"
        echo "(sizeof(infer_job_t) = $job_size bytes, embedded in the frontend's call state) + gRPC"
        echo "core's per-call state (a few KB). The measured figure above also includes the"
        echo "batch's gathered input and output buffers of the instance worker."
        echo "Server-side queue wait during the burst (ModelStatistics):" \
            "$(awk -v q="${queue_us:-0}" 'BEGIN {printf "%.0f", q / 1000}') ms per request."
    fi
} >"$MEM"

echo "end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"
machine_md >"$TMP_DIR/machine.md"
/usr/bin/python3 benchmarks/summarize.py batching-report "$CSV" "$TMP_DIR/machine.md" "$LOADS" \
    "$MEM" "$OUT" >"$OUT/batching.md"
log "wrote $CSV and $OUT/batching.md"
