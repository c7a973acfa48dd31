#!/usr/bin/env bash
# The test command (README): builds and runs every test project; prints "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
results="artifacts/test-results"
rm -rf "$results"
bash tests/setup.sh || echo "setup: incomplete; tests that need the missing packages will fail" >&2
dotnet build Consort.slnx -c Release -nologo -v quiet -clp:ErrorsOnly || { echo "0 passed, 1 failed"; exit 1; }
dotnet test Consort.slnx -c Release --no-build -nologo --logger "trx" --results-directory "$results" "$@"
rc=$?
passed=0; failed=0
for f in "$results"/*.trx; do
  [ -f "$f" ] || continue
  p=$(grep -o 'passed="[0-9]*"' "$f" | head -1 | grep -o '[0-9]*'); x=$(grep -o 'failed="[0-9]*"' "$f" | head -1 | grep -o '[0-9]*')
  passed=$((passed + ${p:-0})); failed=$((failed + ${x:-0}))
done
echo "${passed} passed, ${failed} failed"
[ $rc -eq 0 ] && [ $failed -eq 0 ] && [ $passed -gt 0 ]
