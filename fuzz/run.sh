#!/usr/bin/env bash
# Fuzz the reply parser twins for a bounded time: fuzz/run.sh SECONDS (default 30).
# Exit 0 when no crash was found, non-zero when one was (the input is saved under
# fuzz/crashes/). New interesting inputs go to a scratch directory, never into the
# committed seed corpus. PYTHON overrides the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
python="${PYTHON:-.venv/bin/python}"
case "$seconds" in
    ''|*[!0-9]*) echo "usage: fuzz/run.sh SECONDS" >&2; exit 2 ;;
esac

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p fuzz/crashes

# -timeout: one input taking over 10 s counts as a hang (a crash);
# -rss_limit_mb: memory beyond the parser's bounds counts as a crash too.
"$python" fuzz/fuzz_replies.py \
    -max_total_time="$seconds" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -max_len=4096 \
    -print_final_stats=1 \
    -artifact_prefix=fuzz/crashes/ \
    "$scratch" fuzz/corpus
