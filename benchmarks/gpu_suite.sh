#!/usr/bin/env bash
# A first run on a GPU machine: every GPU check, in order of value, under one deadline.
#
#   bash benchmarks/gpu_suite.sh OUTDIR SECONDS            # run (needs a CUDA GPU)
#   bash benchmarks/gpu_suite.sh --dry-run OUTDIR SECONDS  # list the steps and their time limits
#
# Steps: the environment and versions; the GPU tests (tests/kernels and tests/quant, compiled,
# the compile check included); end to end on the 26B-A4B geometry at 16 and 48 steps with the
# autoregressive baselines, fp8 then int4; the kernel benchmarks; the Dream family's quantized
# kernels and cache benchmark (Open-dCoder and 7B geometries, bf16); end to end bf16; int8;
# transformers' reference last. Each step has its own time limit, cut to what is left of
# SECONDS; a step that would get less than its minimum is skipped. A time limit sends SIGINT
# first: the benchmarks write their record after every format or case, so a cut step keeps
# what it finished.
#
# OUTDIR holds few files, brought up to date after every step:
#   summary.tsv       one line per step: name, status (ok / failed / timeout / skipped), exit
#                     code, seconds, time limit
#   log.txt           every step's output, under a header per step
#   records/          the benchmarks' JSON records and the tests' junit XML
#   gpu_suite.tar.gz  all of the above in one file
# Without a CUDA GPU it refuses at once (exit 2) and runs nothing.
set -uo pipefail

usage() {
    echo "usage: bash benchmarks/gpu_suite.sh [--dry-run] OUTDIR SECONDS" >&2
    exit 64
}

dry_run=0
positional=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        -*) usage ;;
        *) positional+=("$arg") ;;
    esac
done
[ "${#positional[@]}" -eq 2 ] || usage
outdir=${positional[0]}
budget=${positional[1]}
[[ "$budget" =~ ^[0-9]+$ ]] && [ "$budget" -gt 0 ] || { echo "gpu_suite: SECONDS must be a positive integer" >&2; usage; }

repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python}
records="$outdir/records"
e2e="$py benchmarks/gpu_end_to_end.py --steps 16,48 --out $records"
reserve=15  # seconds kept back for the last packing

names=() limits=() minimums=() commands=()
# step NAME LIMIT MINIMUM COMMAND: time limit and the least time worth starting it with (seconds);
# COMMAND runs in bash from the repository root.
step() { names+=("$1"); limits+=("$2"); minimums+=("$3"); commands+=("$4"); }

versions="import sys, torch, triton; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda)
print('triton', triton.__version__); p = torch.cuda.get_device_properties(0)
print(torch.cuda.get_device_name(0), 'sm_%d%d' % torch.cuda.get_device_capability(0), p.multi_processor_count, 'SMs',
      round(p.total_memory / 2**30), 'GiB')
try:
    import transformers; print('transformers', transformers.__version__)
except ImportError as error:
    print('transformers:', error)"
step environment 30 5 "nvidia-smi; $py -c \"$versions\""
step gpu-tests 300 60 "DG_LSP_COMPILE_JOBS=\$(nproc) $py -m pytest -q -p no:cacheprovider \
    --junitxml=$records/gpu-tests.xml tests/kernels tests/quant"
step end-to-end-fp8 200 60 "$e2e --formats fp8 --no-reference"
step end-to-end-int4 200 60 "$e2e --formats int4 --no-reference"
step kernel-benchmarks 240 60 "$py benchmarks/kernels.py --out $records"
step dream-family 240 40 "$py -m pytest -q -p no:cacheprovider --junitxml=$records/dream-tests.xml \
    tests/dream/test_dream_quantization.py && $py benchmarks/dream_cache.py --device cuda --dtype bf16 --end-to-end \
    --out $records && $py benchmarks/dream_cache.py --device cuda --dtype bf16 --geometry dream-7b --steps 4,16 \
    --out $records"
step end-to-end-bf16 180 60 "$e2e --formats bf16 --no-reference"
step end-to-end-int8 180 60 "$e2e --formats int8 --no-reference"
step transformers-reference 240 60 "$e2e --formats none"

if [ "$dry_run" -eq 1 ]; then
    echo "gpu_suite: ${#names[@]} steps under a deadline of ${budget}s (OUTDIR $outdir), in this order:"
    for i in "${!names[@]}"; do
        printf '  %-24s limit %4ss  (skipped with under %ss left)  %s\n' "${names[i]}" "${limits[i]}" "${minimums[i]}" \
            "$(head -c 160 <<< "${commands[i]}" | tr '\n' ' ')"
    done
    exit 0
fi

# Refuse at once where there is nothing to measure.
if ! command -v nvidia-smi > /dev/null 2>&1 || ! nvidia-smi -L > /dev/null 2>&1; then
    echo "gpu_suite: no NVIDIA GPU here (nvidia-smi is missing or lists none): nothing run. --dry-run lists the steps." >&2
    exit 2
fi
if ! (cd "$repo" && "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)') 2> /dev/null; then
    echo "gpu_suite: torch sees no CUDA device ($py): nothing run." >&2
    exit 2
fi

mkdir -p "$records"
outdir=$(cd "$outdir" && pwd)
records="$outdir/records"
summary="$outdir/summary.tsv"
log="$outdir/log.txt"
printf 'step\tstatus\texit\tseconds\tlimit\n' > "$summary"
: > "$log"
deadline=$((SECONDS + budget))

pack() {
    tar -czf "$outdir/.gpu_suite.tar.gz" -C "$outdir" summary.tsv log.txt records 2> /dev/null \
        && mv "$outdir/.gpu_suite.tar.gz" "$outdir/gpu_suite.tar.gz"
}

cd "$repo" || exit 1
for i in "${!names[@]}"; do
    name=${names[i]} limit=${limits[i]} minimum=${minimums[i]} command=${commands[i]}
    left=$((deadline - SECONDS - reserve))
    if [ "$left" -lt "$minimum" ]; then
        printf '%s\tskipped\t-\t0\t%s\n' "$name" "$limit" >> "$summary"
        echo "== $name: skipped (${left}s left)" | tee -a "$log"
        continue
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "== $name (limit ${limit}s)" | tee -a "$log"
    echo "$command" >> "$log"
    started=$SECONDS
    timeout --signal=INT --kill-after=20 "$limit" bash -c "$command" >> "$log" 2>&1
    code=$?
    case "$code" in
        0) status=ok ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$code" "$((SECONDS - started))" "$limit" >> "$summary"
    echo "== $name: $status (exit $code, $((SECONDS - started))s)" | tee -a "$log"
    pack
done
pack
echo "gpu_suite: done; $summary, $log, $records, $outdir/gpu_suite.tar.gz"
column -t -s $'\t' "$summary" 2> /dev/null || cat "$summary"
