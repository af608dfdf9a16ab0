#!/usr/bin/env bash
# run_floor.sh: hltinfer-server against the bare gRPC-core floor, and the issue's targets.
#
# Run from the repository root:  benchmarks/run_floor.sh [--reps N] [--duration S] [--no-perf]
#                                    [--quiet-load L] [--quiet-wait S]
# Builds what it needs in $BUILD (default build-bench, release), starts hltinfer-echo and
# hltinfer-server (bundled models/, plus a second instance whose jet_tagger has no
# dynamic_batching, to separate the batcher's delay from the transport) on 127.0.0.1, and for
# each repetition measures:
#   - ServerLive through hltinfer-bench at concurrency 1 and 64 against echo and server;
#   - h2load replaying a gRPC-framed ServerLive (-c1 -m1 and -c1 -m64) against both;
#   - ModelInfer jet_tagger batch 1 at concurrency 1 and 64 (with the in-run ServerLive floor);
#   - ModelInfer facile 16000 rows (~960 KB in) at concurrency 1 and 64.
# Then writes benchmarks/results/floor.csv (every raw run) and floor.md (medians, targets),
# profiling the server with perf for every missed target (unless --no-perf).
# Bounded: every command has a timeout; the whole run takes ~6-8 minutes. Kills only the PIDs
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3
DUR=5
WARM=1
PERF=1
QUIET_LOAD=2.5 # before each repetition, wait up to QUIET_WAIT s for a lower load average
QUIET_WAIT=60
while [[ $# -gt 0 ]]; do
    case $1 in
    --reps) REPS=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
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
CSV=$OUT/floor.csv
rm -f "$CSV" "$OUT"/perf-infer_*.txt "$OUT"/perf-facile_*.txt "$OUT"/perf-live_*.txt
LOADS=$TMP_DIR/loadavg.txt

build_if_needed
start_echo ECHO_PID ECHO_PORT
start_server SRV_PID SRV_PORT models
NB_REPO=$(repo_without_batching jet_tagger)
start_server NB_PID NB_PORT "$NB_REPO"
log "echo pid $ECHO_PID port $ECHO_PORT; server pid $SRV_PID port $SRV_PORT; server without jet_tagger batching pid $NB_PID port $NB_PORT"
echo "start: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"

B=(--duration="$DUR" --warmup="$WARM")
for r in $(seq "$REPS"); do
    wait_quiet "$QUIET_LOAD" "$QUIET_WAIT"
    log "repetition $r of $REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    echo "rep $r: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"
    for c in 1 64; do
        log "ServerLive c=$c: echo, server"
        bench "$CSV" "r$r:echo" "$ECHO_PORT" "$ECHO_PID" --mode=live --concurrency=$c "${B[@]}"
        bench "$CSV" "r$r:server" "$SRV_PORT" "$SRV_PID" --mode=live --concurrency=$c "${B[@]}"
    done
    for m in 1 64; do
        log "h2load -c1 -m$m: echo, server"
        h2load_row "$CSV" "r$r:echo" "$ECHO_PORT" $m "$DUR"
        h2load_row "$CSV" "r$r:server" "$SRV_PORT" $m "$DUR"
    done
    for c in 1 64; do
        log "ModelInfer jet_tagger batch 1 c=$c (bundled config, then without batching)"
        bench "$CSV" "r$r:server" "$SRV_PORT" "$SRV_PID" --model=jet_tagger --batch=1 \
            --concurrency=$c "${B[@]}"
        bench "$CSV" "r$r:server-nobatch" "$NB_PORT" "$NB_PID" --model=jet_tagger --batch=1 \
            --concurrency=$c "${B[@]}"
    done
    for c in 1 64; do
        log "ModelInfer facile 16000 rows c=$c"
        bench "$CSV" "r$r:server" "$SRV_PORT" "$SRV_PID" --model=facile --batch=16000 \
            --concurrency=$c "${B[@]}" --timeout-ms=60000
    done
done
echo "end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$LOADS"

# Targets first, so the missed ones can be profiled before the report is written.
/usr/bin/python3 benchmarks/summarize.py floor-targets "$CSV" >"$TMP_DIR/targets.txt"
if [[ $PERF -eq 1 ]]; then
    while read -r name status; do
        [[ $status == MISS ]] || continue
        log "target $name missed: profiling the server with perf"
        case $name in
        infer_c1_latency)
            perf_profile "$SRV_PID" "$OUT/perf-$name.txt" 8 -- "$BENCH" \
                --url=127.0.0.1:$SRV_PORT --model=jet_tagger --concurrency=1 --duration=10 \
                --warmup=0 --no-floor --quiet ;;
        infer_c64_throughput)
            perf_profile "$SRV_PID" "$OUT/perf-$name.txt" 8 -- "$BENCH" \
                --url=127.0.0.1:$SRV_PORT --model=jet_tagger --concurrency=64 --duration=10 \
                --warmup=0 --no-floor --quiet ;;
        facile_input_rate)
            perf_profile "$SRV_PID" "$OUT/perf-$name.txt" 8 -- "$BENCH" \
                --url=127.0.0.1:$SRV_PORT --model=facile --batch=16000 --concurrency=64 \
                --duration=10 --warmup=0 --no-floor --quiet --timeout-ms=60000 ;;
        live_vs_echo)
            perf_profile "$SRV_PID" "$OUT/perf-$name.txt" 8 -- "$BENCH" \
                --url=127.0.0.1:$SRV_PORT --mode=live --concurrency=64 --duration=10 \
                --warmup=0 --quiet
            perf_profile "$ECHO_PID" "$OUT/perf-${name}-echo.txt" 8 -- "$BENCH" \
                --url=127.0.0.1:$ECHO_PORT --mode=live --concurrency=64 --duration=10 \
                --warmup=0 --quiet ;;
        live_vs_echo_h2load)
            H2=(h2load -D 10 -c1 -m64 -d "$TMP_DIR/live.grpc" -H 'content-type: application/grpc'
                -H 'te: trailers')
            perf_profile "$SRV_PID" "$OUT/perf-$name.txt" 8 -- "${H2[@]}" \
                "http://127.0.0.1:$SRV_PORT/inference.GRPCInferenceService/ServerLive"
            perf_profile "$ECHO_PID" "$OUT/perf-${name}-echo.txt" 8 -- "${H2[@]}" \
                "http://127.0.0.1:$ECHO_PORT/inference.GRPCInferenceService/ServerLive" ;;
        esac
    done <"$TMP_DIR/targets.txt"
fi

machine_md >"$TMP_DIR/machine.md"
/usr/bin/python3 benchmarks/summarize.py floor-report "$CSV" "$TMP_DIR/machine.md" "$LOADS" \
    "$OUT" >"$OUT/floor.md"
log "wrote $CSV and $OUT/floor.md"
cat "$TMP_DIR/targets.txt" >&2
