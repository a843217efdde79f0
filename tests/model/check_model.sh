#!/bin/sh
# check_model.sh — verifies tests/model/queue.pml with spin in two small configurations that
# run in seconds and still find the lost-item races the protocol must avoid. Exit 77 (skip)
# when spin or a C compiler is missing. usage: check_model.sh MODEL WORKDIR
set -eu
model=$1
work=$2
command -v spin >/dev/null || { echo "spin is not installed (apt-get install spin): skipped"; exit 77; }
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "no C compiler: skipped"; exit 77; }
mkdir -p "$work"
cd "$work"
for cfg in "-DP=2 -DK=1" "-DP=1 -DK=3"; do
    rm -f pan pan.* ./*.trail
    # shellcheck disable=SC2086
    spin $cfg -a "$model" >/dev/null
    "$cc" -O2 -DSAFETY -DCOLLAPSE -DMEMLIM=2000 -o pan pan.c
    out=$(./pan -m100000 2>&1)
    echo "$cfg: $(echo "$out" | grep -E 'errors:|states, stored' | tr -s ' ' | tr '\n' ' ')"
    echo "$out" | grep -q "errors: 0" || { echo "$out" | tail -30; exit 1; }
done
