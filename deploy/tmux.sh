#!/bin/sh
# One line: alertd in a detached tmux session beside your training (`tmux attach -t alertd` to look,
# `alertd status --state-dir ~/.alertd` for a summary). Set ALERTD_NOTIFY to an apprise URL first.
tmux new-session -d -s alertd "alertd run --state-dir \"\$HOME/.alertd\" --notify \"\$ALERTD_NOTIFY\" ${*:-'runs/*/train.log'}"
