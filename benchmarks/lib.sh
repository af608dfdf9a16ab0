# Shared by run_floor.sh and run_batching.sh (sourced, not run): building, starting and
# stopping the servers (only the PIDs started here are ever signalled), the machine
# description, and the hltinfer-bench / h2load / perf wrappers. Everything talks to 127.0.0.1.

BUILD=${BUILD:-build-bench}
BENCH=$BUILD/benchmarks/hltinfer-bench
ECHO_BIN=$BUILD/benchmarks/hltinfer-echo
SERVER_BIN=$BUILD/server/hltinfer-server
CONN_HOLD=$BUILD/benchmarks/hltinfer-conn-hold
STARTED_PIDS=()
TMP_DIR=$(mktemp -d /tmp/hltbench.XXXXXX)

# Priority of everything the scripts start (servers, load generators): on a machine shared
# with other engineers' builds, root runs them at nice -15 so a compile job does not land in
# the middle of a measurement. BENCH_NICE=0 turns it off; recorded in the reports.
BENCH_NICE=${BENCH_NICE:--15}
[[ $EUID -eq 0 ]] || BENCH_NICE=0
NICE=()
[[ $BENCH_NICE == 0 ]] || NICE=(nice -n "$BENCH_NICE")

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Configures (release) and builds only the targets the scripts need, so an unrelated broken
# test does not stop a benchmark.
build_if_needed() {
    if [[ ! -f $BUILD/build.ninja ]]; then
        log "configuring $BUILD (release)"
        meson setup "$BUILD" --buildtype=release >"$TMP_DIR/meson.log" 2>&1 ||
            { cat "$TMP_DIR/meson.log" >&2; die "meson setup failed"; }
    fi
    log "building benchmark targets in $BUILD"
    timeout 900 ninja -C "$BUILD" benchmarks/hltinfer-bench benchmarks/hltinfer-echo \
        benchmarks/hltinfer-conn-hold server/hltinfer-server >"$TMP_DIR/ninja.log" 2>&1 ||
        { tail -30 "$TMP_DIR/ninja.log" >&2; die "build failed"; }
}

# Signals only what this script started: TERM, up to 10 s grace, then KILL.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
    rm -rf "$TMP_DIR"
}

# wait_started LOGFILE PID -> prints the gRPC port of the event=server_started line (30 s max).
wait_started() {
    local logf=$1 pid=$2 port
    for _ in $(seq 300); do
        port=$(grep -o 'event=server_started.*grpc_port=[0-9]*' "$logf" 2>/dev/null |
               grep -o 'grpc_port=[0-9]*' | head -1 | cut -d= -f2)
        if [[ -n $port ]]; then echo "$port"; return 0; fi
        kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; return 1; }
        sleep 0.1
    done
    cat "$logf" >&2
    return 1
}

# start_echo VAR_PID VAR_PORT
start_echo() {
    local logf=$TMP_DIR/echo.$RANDOM.log
    "${NICE[@]}" "$ECHO_BIN" --port=0 2>"$logf" &
    local pid=$!
    STARTED_PIDS+=("$pid")
    local port
    port=$(wait_started "$logf" "$pid") || die "hltinfer-echo did not start"
    printf -v "$1" '%s' "$pid"
    printf -v "$2" '%s' "$port"
}

# start_server VAR_PID VAR_PORT REPOSITORY [extra args...]
start_server() {
    local vpid=$1 vport=$2 repo=$3
    shift 3
    local logf=$TMP_DIR/server.$RANDOM.log
    "${NICE[@]}" "$SERVER_BIN" --grpc-port=0 --http-port=0 --metrics-port=0 --grpc-address=127.0.0.1 \
        --model-repository="$repo" "$@" 2>"$logf" &
    local pid=$!
    STARTED_PIDS+=("$pid")
    local port
    port=$(wait_started "$logf" "$pid") || die "hltinfer-server did not start"
    printf -v "$vpid" '%s' "$pid"
    printf -v "$vport" '%s' "$port"
}

# wait_quiet MAX_LOAD MAX_WAIT_S: waits (bounded) until the 1-minute load average is below
# MAX_LOAD, so a repetition does not start in the middle of someone else's build. Returns at
# once when MAX_WAIT_S is 0.
wait_quiet() {
    local max=$1 wait=$2 t=0 la
    while ((t < wait)); do
        la=$(cut -d' ' -f1 /proc/loadavg)
        awk -v a="$la" -v m="$max" 'BEGIN {exit !(a < m)}' && return 0
        ((t == 0)) && log "load average $la >= $max: waiting up to ${wait}s for a quieter machine"
        sleep 5
        t=$((t + 5))
    done
    return 0
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# A copy of models/ with dynamic_batching removed from MODEL's config.json.
repo_without_batching() {
    local model=$1 dst=$TMP_DIR/repo-nobatch
    cp -r models "$dst"
    /usr/bin/python3 - "$dst/$model/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c.pop("dynamic_batching", None)
json.dump(c, open(p, "w"), indent=2)
EOF
    echo "$dst"
}

# bench CSV LABEL URL_PORT SERVER_PID [hltinfer-bench options...]: one run, bounded in time;
# its table goes to stderr, its rows to CSV. A failed run is logged, never fatal.
bench() {
    local csv=$1 label=$2 port=$3 spid=$4
    shift 4
    local rc=0
    timeout 300 "${NICE[@]}" "$BENCH" --url="127.0.0.1:$port" --server-pid="$spid" --csv="$csv" \
        --label="$label" --quiet "$@" >"$TMP_DIR/bench.out" 2>&1 || rc=$?
    sed 's/^/    /' "$TMP_DIR/bench.out" >&2
    [[ $rc -eq 0 ]] || log "hltinfer-bench exited with $rc ($label $*)"
}

# h2load_row CSV LABEL PORT STREAMS DURATION: h2load replaying one gRPC-framed ServerLive
# request (5-byte prefix: not compressed, length 0) on one connection with STREAMS
# concurrent streams; appends a row in hltinfer-bench's CSV format (h2load reports the mean
# and max latency, no percentiles).
h2load_row() {
    local csv=$1 label=$2 port=$3 m=$4 dur=$5
    local body=$TMP_DIR/live.grpc out=$TMP_DIR/h2load.out
    printf '\x00\x00\x00\x00\x00' >"$body"
    timeout 120 "${NICE[@]}" h2load -D "$dur" --warm-up-time=1 -c1 -m"$m" -d "$body" \
        -H 'content-type: application/grpc' -H 'te: trailers' \
        "http://127.0.0.1:$port/inference.GRPCInferenceService/ServerLive" >"$out" 2>&1 ||
        { log "h2load failed ($label -m$m)"; cat "$out" >&2; return 0; }
    /usr/bin/python3 - "$csv" "$label" "$m" "$dur" "$port" "$out" <<'EOF'
import os, re, sys
csv, label, m, dur, port, out = sys.argv[1:]
t = open(out).read()
def us(v):
    n = float(re.match(r"[\d.]+", v).group())
    return n * 1000 if v.endswith("ms") else n * 1e6 if v.endswith("s") and not v.endswith("us") else n
rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", t).group(1))
req = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", t)
lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", t)
header = ("label,mode,model,batch,concurrency,clients,requests,errors,duration_s,throughput,"
          "rows_per_s,p50_us,p90_us,p95_us,p99_us,mean_us,max_us,server_queue_us,"
          "server_compute_input_us,server_compute_infer_us,server_compute_output_us,mean_batch,"
          "server_total_us,client_cpu_us,server_cpu_us,request_bytes,p50_vs_live,"
          "throughput_vs_live,url\n")
fresh = not os.path.exists(csv) or os.path.getsize(csv) == 0
with open(csv, "a") as f:
    if fresh:
        f.write(header)
    errors = int(req.group(3)) + int(req.group(4))
    f.write(f"{label},h2load-live,,1,{m},1,{req.group(2)},{errors},{dur},{rps:.1f},{rps:.1f},"
            f",,,,{us(lat.group(3)):.1f},{us(lat.group(2)):.1f},,,,,,,,,0,,,127.0.0.1:{port}\n")
print(f"    h2load -c1 -m{m}: {rps:.0f} req/s, mean {us(lat.group(3)):.1f} us", file=sys.stderr)
EOF
}

# perf_profile PID OUTFILE SECONDS -- command...: runs the command (a load) while recording
# the PID's call graphs for SECONDS, then writes the top of the report to OUTFILE.
perf_profile() {
    local pid=$1 outf=$2 secs=$3
    shift 4
    local data=$TMP_DIR/perf.data
    "${NICE[@]}" "$@" >"$TMP_DIR/perf-load.out" 2>&1 &
    local load=$!
    sleep 1.5
    timeout $((secs + 30)) perf record -F 999 -g -p "$pid" -o "$data" -- sleep "$secs" \
        >"$TMP_DIR/perf-record.log" 2>&1 || log "perf record failed (see $outf)"
    wait "$load" || true
    {
        echo "# perf record -F 999 -g -p <server> for ${secs}s during: $*"
        echo "# --- perf report --stdio --no-children (self time) ---"
        timeout 120 perf report -i "$data" --stdio --no-children --sort=dso,sym \
            -g none --percent-limit=0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60
        echo "# --- perf report --stdio --children (inclusive), top entries ---"
        timeout 120 perf report -i "$data" --stdio --children --sort=sym -g none \
            --percent-limit=3 2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
    } >"$outf"
    rm -f "$data"
}

machine_md() {
    local model cores flags avx2 avx512
    model=$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')
    cores=$(nproc)
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    avx2=no; [[ $flags == *" avx2"* ]] && avx2=yes
    avx512=no; [[ $flags == *avx512f* ]] && avx512=yes
    echo "- CPU: $model ($(lscpu | awk -F: '/CPU family/ {gsub(/ /,"",$2); f=$2} /^Model:/ {gsub(/ /,"",$2); m=$2} END {print "family " f " model " m}')), $cores cores online, AVX2: $avx2, AVX-512: $avx512, $(lscpu | awk -F: '/Hypervisor vendor/ {gsub(/^ +/, "", $2); print "hypervisor " $2}')"
    echo "- Memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- Kernel: $(uname -sr)"
    echo "- Compiler: $(gcc --version | head -1)"
    echo "- gRPC core: $(pkg-config --modversion grpc) (Debian libgrpc-dev $(dpkg-query -W -f='${Version}' libgrpc-dev 2>/dev/null || echo '?')); h2load: $(h2load --version 2>/dev/null | head -1 | awk '{print $2}')"
    echo "- Processes started by the script ran at nice $BENCH_NICE (other engineers' jobs at 0)."
    echo "- Build: $BUILD, buildtype $(meson introspect "$BUILD" --buildoptions 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null || echo '?'); tree at $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
}
