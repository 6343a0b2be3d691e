#!/usr/bin/env bash
# Reproduces the README "Performance" table: every bench script in turn, never two at once
# (they would share the cores they measure). Output: the tables on stdout, a copy in
# bench/run/run_all-<mode>.txt and each script's raw figures in bench/run/*.json.
#   bench/run_all.sh --quick    # ~13 min (10^5/10^6 rows, short windows, 1 run per cell)
#   bench/run_all.sh            # ~60 min (60 s windows, 3 runs per cell, 300 onsets)
#   bench/run_all.sh --full     # + the 10^7-row replay (~1.6 GB in bench/run/data/) (~80 min)
# Each script stops what it started by PID on exit, error and INT/TERM; this trap stops the
# script that is running. The peer comparison needs mtail, prometheus and
# prometheus-alertmanager (apt-get install -y ...); it is skipped with a note when they are absent.
# PYTHON picks the interpreter (default: .venv/bin/python, else python3); ALERTD_SRC measures
# another source tree (e.g. a `git archive` export of a commit).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in --quick|--full|"") ;; *) echo "usage: $0 [--quick|--full]" >&2; exit 2 ;; esac
PY=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3 )}
mkdir -p bench/run
out="bench/run/run_all-${mode#--}.txt"; [[ -z "$mode" ]] && out=bench/run/run_all-default.txt
child=""
cleanup() {
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child"; wait "$child" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
step() { "$PY" "$@" & child=$!; wait "$child"; child=""; }
quick=""; [[ "$mode" == "--quick" ]] && quick="--quick"
{
  echo "# alertd benchmarks ($(date -u +%FT%TZ), mode ${mode:-default})"
  echo "nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')\"" \
       "mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
  "$PY" -c 'import sys, polars; print("python", sys.version.split()[0], "polars", polars.__version__)'
  echo; echo "### replay_throughput"; step bench/replay_throughput.py $quick ${mode/--quick/}
  echo; echo "### live_latency";      step bench/live_latency.py $quick
  echo; echo "### watch_cost";        step bench/watch_cost.py $quick
  echo; echo "### peers"
  if command -v mtail >/dev/null && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
    step bench/peers.py $quick
  else
    echo "skipped: apt-get install -y mtail prometheus prometheus-alertmanager"
  fi
} 2>&1 | tee "$out"
