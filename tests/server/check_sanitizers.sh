#!/bin/sh
# Runs a criterion suite and fails it if a sanitizer reported anything. Criterion counts an
# assertion failure or a crash, but a LeakSanitizer report at a test process's exit does not
# change that test's result, so leaks would pass unnoticed without this check.
out=$(mktemp) || exit 99
"$@" >"$out" 2>&1
rc=$?
cat "$out"
if grep -q -e 'ERROR: LeakSanitizer' -e 'ERROR: AddressSanitizer' -e 'runtime error:' "$out"; then
    echo "check_sanitizers: sanitizer report in the output above" >&2
    [ "$rc" -eq 0 ] && rc=1
fi
rm -f "$out"
exit "$rc"
