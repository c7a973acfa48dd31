#!/usr/bin/env bash
# The long mutation fuzz run (not part of ./test.sh): ./tests/fuzz.sh [MUTANTS] [SEED]
# Runs the seeded fuzzer (tests/Consort.Cli.Tests/Safety/MutationFuzzTests.cs) over GGUF files, safetensors folders,
# run configs, datasets, merge YAML and run folders with MUTANTS in all (default 3000), then prints the counts of each
# kind (also in artifacts/fuzz/KIND.json; failing inputs are kept in artifacts/fuzz/failures/). Exit 0: no native
# crash, hang or internal error.
set -uo pipefail
cd "$(dirname "$0")/.."
export CONSORT_FUZZ_MUTANTS="${1:-3000}"
[ $# -ge 2 ] && export CONSORT_FUZZ_SEED="$2"
rm -f artifacts/fuzz/*.json
dotnet build tests/Consort.Cli.Tests -c Release -nologo -v quiet -clp:ErrorsOnly || exit 1
start=$(date +%s)
dotnet test tests/Consort.Cli.Tests -c Release --no-build -nologo --filter "Category=Fuzz" --logger "console;verbosity=normal"
rc=$?
secs=$(( $(date +%s) - start ))
python3 - "$secs" <<'PY'
import glob, json, sys
rows = [json.load(open(f)) for f in sorted(glob.glob("artifacts/fuzz/*.json"))]
keys = ["mutants", "clear_errors", "accepted", "loaded_by_llama_cpp", "native_crashes", "hangs", "internal_errors"]
print("kind".ljust(12) + "".join(k.rjust(20) for k in keys) + "seconds".rjust(10))
for r in rows: print(r["kind"].ljust(12) + "".join(str(r[k]).rjust(20) for k in keys) + str(r["seconds"]).rjust(10))
total = sum(r["mutants"] for r in rows); secs = int(sys.argv[1])
print(f"{total} mutants in {secs} s ({total * 60 / max(secs, 1):.0f} mutants/minute, build excluded)")
PY
exit $rc
