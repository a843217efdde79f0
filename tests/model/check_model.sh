#!/bin/sh
# check_model.sh — verifies the queue's models with spin: queue.pml (one level, blocking pops)
# in two small configurations that run in seconds and still find the lost-item races, and
# queue_levels.pml (two levels, the write-only-when-clear push, a try-pop consumer) that finds
# the lost wake-up. Exit 77 (skip) when spin or a C compiler is missing.
# usage: check_model.sh MODEL_DIR WORKDIR
set -eu
model=$1
work=$2
command -v spin >/dev/null || { echo "spin is not installed (apt-get install spin): skipped"; exit 77; }
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "no C compiler: skipped"; exit 77; }
mkdir -p "$work"
cd "$work"
for run in "queue.pml -DP=2 -DK=1" "queue.pml -DP=1 -DK=3" "queue_levels.pml"; do
    file=${run%% *}
    cfg=${run#"$file"}
    rm -f pan pan.* ./*.trail
    # shellcheck disable=SC2086
    spin $cfg -a "$model/$file" >/dev/null
    "$cc" -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=2000 -o pan pan.c
    out=$(./pan -m100000 2>&1)
    echo "$file$cfg: $(echo "$out" | grep -E 'errors:|states, stored' | tr -s ' ' | tr '\n' ' ')"
    echo "$out" | grep -q "errors: 0" || { echo "$out" | tail -30; exit 1; }
done
