#!/bin/sh
# tests/unit/check_symbols.sh LIB LIST - libhcrt.so exports exactly the functions in LIST (one name a line,
# '#' comments allowed): nothing internal leaks out (-fvisibility=hidden works) and nothing promised is
# missing.
set -eu
lib=$1
list=$2
actual=$(mktemp)
expected=$(mktemp)
trap 'rm -f "$actual" "$expected"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDRBVW]$/ {print $3}' | grep -v '^_' | sed 's/@.*//' | sort -u > "$actual"
grep -v '^#' "$list" | sed '/^$/d' | sort -u > "$expected"
if ! diff -u "$expected" "$actual"; then
    echo "FAIL: exported symbols of $lib differ from $list ('-' promised but missing, '+' exported but not listed)"
    exit 1
fi
echo "ok: $(wc -l < "$actual") exported symbols match $list"
