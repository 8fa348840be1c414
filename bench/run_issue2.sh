#!/usr/bin/env bash
# Issue #2 benchmarks: rtransport against a TCP baseline measured in the same
# run, ping-pong RTT and one-way bandwidth, over loopback and over two network
# namespaces joined by a veth pair (MTU 9000): progress thread/manual,
# busy_poll_us variants, large messages with more in flight, the cffi and C
# loop variants of the ping-pong, and the per-call cost of the Python layer.
#
#   bench/run_issue2.sh                      # run all, print Markdown sections
#   bench/run_issue2.sh --out docs/benchmarks.md
#                                            # ... and put them into that file,
#                                            # between the generated-section markers
#   bench/run_issue2.sh --quick              # small smoke run (seconds)
#
# Options:
#   --repeat N      runs of every measurement, medians reported (default 3)
#   --paths "P..."  which of: loopback netns (default both; netns needs root)
#   --wait-idle S   before each measurement wait up to S s for an idle machine
#                   (default 120; the VM is shared, other load skews numbers)
#   --results DIR   keep the JSON/text results here (default: a new temp dir)
#   --out FILE      replace the generated section of FILE (Markdown)
#   --quick         few iterations and sizes, --repeat 1, no waiting
#
# It runs the *installed* rtransport (from a neutral directory, so a source
# checkout in the current directory does not shadow it); set PYTHONPATH to
# point it elsewhere.  See bench/README.md.
set -euo pipefail

REPEAT=3
PATHS="loopback netns"
WAIT_IDLE=120
RESULTS=""
OUT=""
QUICK=0
PY=${PYTHON:-python3}

while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) REPEAT=$2; shift 2 ;;
        --paths) PATHS=$2; shift 2 ;;
        --wait-idle) WAIT_IDLE=$2; shift 2 ;;
        --results) RESULTS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_issue2.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    REPEAT=1
    WAIT_IDLE=0
    PP_ITERS=(--iters 500)
    BW_ARGS=(--sizes 64K,16M --iters 8)
else
    PP_ITERS=(--iters 10000)
    BW_ARGS=()
fi

if [ -n "$OUT" ]; then
    OUT=$(realpath -m "$OUT")
fi
if [ -z "$RESULTS" ]; then
    RESULTS=$(mktemp -d /tmp/rt-issue2.XXXXXX)
fi
mkdir -p "$RESULTS"
RESULTS=$(realpath "$RESULTS")
cd "$RESULTS"   # neutral directory: import the installed package

echo "# rtransport: $($PY -c 'import rtransport, os; print(os.path.dirname(rtransport.__file__))')" >&2
echo "# results in $RESULTS" >&2

COMMON=(--repeat "$REPEAT" --wait-idle "$WAIT_IDLE" -v)
FILES=()

perf() {  # perf NAME ARGS...
    local name=$1; shift
    echo "+ rtransport perf $* ${COMMON[*]} --json $name.json" >&2
    if $PY -m rtransport perf "$@" "${COMMON[@]}" --json "$RESULTS/$name.json" \
            > "$RESULTS/$name.txt"; then
        cat "$RESULTS/$name.txt" >&2
        FILES+=("$RESULTS/$name.json")
    else
        echo "!! rtransport perf $name failed (see above)" >&2
        FAILED=1
    fi
}

FAILED=0
for path in $PATHS; do
    if [ "$path" = netns ] && [ "$(id -u)" != 0 ]; then
        echo "# skipping --path netns: needs root" >&2
        continue
    fi
    # the issue's comparison: rtransport defaults (progress=thread) and
    # progress=manual, each against TCP measured in the same run
    perf "pingpong-$path" pingpong --path "$path" "${PP_ITERS[@]}" --progress thread,manual \
        --api py
    perf "bw-$path" bw --path "$path" "${BW_ARGS[@]}" --progress thread,manual
    # the large-message target once more: more runs, more messages in flight
    if [ "$QUICK" = 0 ]; then
        COMMON_SAVED=("${COMMON[@]}")
        COMMON=(--repeat $((REPEAT + 2)) --wait-idle "$WAIT_IDLE" -v)
        perf "bw-large-$path" bw --path "$path" --sizes 16M,64M,256M --inflight 32 \
            --progress thread,manual
        COMMON=("${COMMON_SAVED[@]}")
    fi
    if [ "$path" = loopback ]; then
        # settings: busy_poll_us only matters with the progress thread
        # (with progress=manual a waiter spins until its completion arrives)
        perf "pingpong-$path-busypoll" pingpong --path "$path" "${PP_ITERS[@]}" \
            --progress thread --busy-poll-us 0,1000
        # diagnostic: the same ping-pong through the thin cffi binding shows
        # what the Python object layer costs per round trip
        perf "pingpong-$path-cffi" pingpong --path "$path" "${PP_ITERS[@]}" \
            --progress thread,manual --api cffi
    fi
    # both transports' loops in C (rt_perf_pingpong / rt_perf_tcp_pingpong):
    # the transports without any interpreter in the measured path
    if $PY -c 'import rtransport, sys; sys.exit(not hasattr(rtransport.lib, "rt_perf_pingpong"))'; then
        perf "pingpong-$path-c" pingpong --path "$path" "${PP_ITERS[@]}" \
            --progress thread,manual --api c
    fi
done

# per-call cost of the Python layer (CPU time, one process: robust to load)
echo "+ rtransport perf overhead --json overhead.json" >&2
if $PY -m rtransport perf overhead --json "$RESULTS/overhead.json" > "$RESULTS/overhead.txt"; then
    cat "$RESULTS/overhead.txt" >&2
    FILES+=("$RESULTS/overhead.json")
fi

if [ ${#FILES[@]} -eq 0 ]; then
    echo "run_issue2.sh: no results" >&2
    exit 1
fi

MD="$RESULTS/sections.md"
{
    ARGS_NOTE="--repeat $REPEAT --wait-idle $WAIT_IDLE"
    [ "$QUICK" = 1 ] && ARGS_NOTE="--quick"
    echo "Generated by \`bench/run_issue2.sh $ARGS_NOTE\` on $(date -u +%Y-%m-%dT%H:%MZ)" \
         "($(nproc)-core machine, $(uname -r)); raw JSON/text: \`$RESULTS\`."
    echo
    $PY -m rtransport perf report --markdown "${FILES[@]}"
} > "$MD"

if [ -n "$OUT" ]; then
    BEGIN='<!-- BEGIN generated by bench/run_issue2.sh -->'
    END='<!-- END generated by bench/run_issue2.sh -->'
    if [ ! -f "$OUT" ]; then
        printf '# Benchmarks\n\n%s\n%s\n' "$BEGIN" "$END" > "$OUT"
    fi
    if ! grep -qF "$BEGIN" "$OUT"; then
        printf '\n%s\n%s\n' "$BEGIN" "$END" >> "$OUT"
    fi
    $PY - "$OUT" "$MD" "$BEGIN" "$END" <<'EOF'
import sys
out, md, begin, end = sys.argv[1:]
text = open(out).read()
new = open(md).read().rstrip() + "\n"
a = text.index(begin) + len(begin)
b = text.index(end, a)
open(out, "w").write(text[:a] + "\n" + new + text[b:])
EOF
    echo "# wrote the generated section of $OUT" >&2
else
    cat "$MD"
fi
exit $FAILED
