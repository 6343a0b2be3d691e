#!/bin/bash
#SBATCH --job-name=train
#SBATCH --time=24:00:00
# alertd beside a Slurm training job: started before srun on the batch node, stopped when the job
# ends (done, failed, scancel or time limit), so it saves its state and sends what is pending.
#
#   sbatch deploy/sbatch_snippet.sh --epochs 10      # arguments go to train.py
#
# Set ALERTD_NOTIFY (an apprise URL, e.g. 'slack://${SLACK_TOKEN}/#training': single quotes, alertd
# expands ${...} itself) in the environment sbatch inherits; ALERTD_ARGS adds options (--var ...).
set -euo pipefail

RUN_DIR=${RUN_DIR:-$PWD/runs/${SLURM_JOB_ID:-local}}
STATE_DIR=${ALERTD_STATE_DIR:-$RUN_DIR/alertd-state}
mkdir -p "$RUN_DIR"

# --poll: shared filesystems (NFS, Lustre) give no inotify events for writes from compute nodes.
# shellcheck disable=SC2086  # ALERTD_ARGS is a list of options
alertd run --state-dir "$STATE_DIR" --poll 2 ${ALERTD_NOTIFY:+--notify "$ALERTD_NOTIFY"} ${ALERTD_ARGS:-} \
    "$RUN_DIR/train.log" "$RUN_DIR/*.jsonl" >"$RUN_DIR/alertd.log" 2>&1 &
ALERTD_PID=$!
echo "alertd: started (pid $ALERTD_PID), events in $RUN_DIR/alertd.log" >&2

stop_alertd() {
    kill -TERM "$ALERTD_PID" 2>/dev/null || true
    wait "$ALERTD_PID" 2>/dev/null || true
    echo "alertd: stopped" >&2
}
trap stop_alertd EXIT
# scancel and the time limit send SIGTERM to this script: end the training step, then EXIT runs.
trap 'kill -TERM "$SRUN_PID" 2>/dev/null || true; wait "$SRUN_PID" || true; exit 143' TERM INT

srun python train.py "$@" >"$RUN_DIR/train.log" 2>&1 &
SRUN_PID=$!
wait "$SRUN_PID"  # interruptible, unlike a foreground srun: the TERM trap runs at once
