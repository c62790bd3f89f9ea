#!/usr/bin/env bash
# The paper's grid (SPEC "The paper's grid"): every model x method, LA over
# spatial_range x max_iter x sampling_times; attributions, then Insertion/Deletion scores.
# Run with --help for the options.
set -u
set -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SELF="$(basename "${BASH_SOURCE[0]}")"

usage() {
    cat <<EOF
Usage: $SELF [options]

Runs the paper's grid: for every model and method, generate_attributions.py then eval.py;
LA once for every (spatial_range, max_iter, sampling_times). A cell whose scores file already
exists is skipped as done (only its results.csv row is refreshed, which needs no model), so
resuming after a crash is rerunning the same command; a cell that was cut off half way resumes
from its saved chunks. A failing cell does not stop the grid. At the end a summary lists what
ran, what was skipped and what failed (with its log file). Exit status: 0 if no cell failed,
1 if any did, 2 on a usage error.

Grid (lists are space- or comma-separated; defaults are the published grid):
  --models LIST          models; NAME:WEIGHTS gives one model its own weights
                         (default: inception_v3 resnet50 vgg16 maxvit_t)
  --methods LIST         methods (default: fast_ig deeplift guided_ig ig sg big sm mfaba eg agi
                         attexplore la)
  --spatial_ranges LIST  LA spatial_range values (default: 10 20 30)
  --max_iters LIST       LA max_iter values (default: 10 20 30)
  --sampling_times LIST  LA sampling_times values (default: 10 20 30); passed to both scripts

Passed to both scripts:
  --data_dir DIR         folder with img_batch.pt and label_batch.pt (scripts' default: data)
  --limit N              only the first N images
  --weights W            default | a torchvision weights name | random (file names and CSV
                         rows then carry the model as MODEL-W, e.g. resnet50-random)
  --device D             cpu, cuda, cuda:N or auto (scripts' default: auto)
  --published            what the published scripts computed (SPEC "As published"): la, agi,
                         deeplift and eg couple the images of each group, the metric orders ties
                         as NumPy did; outputs are tagged MODEL-published (to check the paper's
                         table; the default is the fair comparison of methods)

Outputs:
  --attr_prefix DIR      attribution maps (default: attributions)
  --scores_prefix DIR    scores .npz files (default: scores)
  --csv_path FILE        results table (default: results.csv)
  --log_dir DIR          one log per cell, <stem>.log, and summary.txt (default: logs/grid)

How to run:
  --python PY            interpreter (default: $ROOT/.venv/bin/python if present, else python3)
  --launcher "CMD"       what runs each script instead of the interpreter, e.g.
                         "torchrun --nproc_per_node=4"; a leading word 'torchrun' becomes
                         "PY -m torch.distributed.run" so the ranks use the same interpreter
  --gen_args "ARGS"      extra arguments for generate_attributions.py (e.g. "--batch_size 8")
  --eval_args "ARGS"     extra arguments for eval.py (e.g. "--batch_size 50")
  --dry-run              print the plan (every command) and run nothing
  -h, --help             this text

Option names take '-' or '_' alike (--dry_run, --max-iters); --spatial_range, --max_iter and
--model/--method are accepted for the plural forms.

Examples:
  $SELF                                                   # the full published grid
  $SELF --models resnet50 --methods "sm ig la" --spatial_ranges 20 --limit 100
  $SELF --dry-run --models vgg16 --methods la
  $SELF --published --models resnet50                     # the paper's computation, tagged -published
  $SELF --launcher "torchrun --nproc_per_node=4"          # every step on 4 GPUs
EOF
}

die() {
    echo "$SELF: $*" >&2
    echo "Try '$SELF --help'." >&2
    exit 2
}

split_list() {  # split_list NAME VALUE: NAME=(words of VALUE, commas and spaces separate)
    local -n _out="$1"
    local IFS=$', \t\n'
    read -r -d "" -a _out <<<"$2" || true
}

# ---------------------------------------------------------------- options

MODELS=(inception_v3 resnet50 vgg16 maxvit_t)
METHODS=(fast_ig deeplift guided_ig ig sg big sm mfaba eg agi attexplore la)
RANGES=(10 20 30)
ITERS=(10 20 30)
SAMPLES=(10 20 30)
DATA_DIR=""
LIMIT=""
WEIGHTS="default"
DEVICE=""
ATTR_PREFIX="attributions"
SCORES_PREFIX="scores"
CSV_PATH="results.csv"
LOG_DIR="logs/grid"
PY=""
LAUNCHER=""
GEN_ARGS=()
EVAL_ARGS=()
DRY_RUN=0
PUBLISHED=0

while (($#)); do
    opt="$1"
    value=""
    has_value=0
    if [[ "$opt" == --*=* ]]; then
        value="${opt#*=}"
        opt="${opt%%=*}"
        has_value=1
    fi
    if [[ "$opt" == --* ]]; then
        opt="${opt//-/_}"      # --dry-run -> __dry_run -> --dry_run
        opt="--${opt#__}"
    fi
    case "$opt" in
        -h | --help) usage; exit 0 ;;
        --dry_run) DRY_RUN=1; shift; continue ;;
        --published) PUBLISHED=1; shift; continue ;;
        --models | --model | --methods | --method | --attr_method | --spatial_ranges | --spatial_range | \
            --max_iters | --max_iter | --sampling_times | --sampling_time | --samples_number | --data_dir | \
            --limit | --weights | --device | --attr_prefix | --scores_prefix | --prefix | --csv_path | --csv | \
            --log_dir | --python | --launcher | --gen_args | --eval_args) ;;
        *) die "unknown option $1" ;;
    esac
    if ((!has_value)); then
        (($# >= 2)) || die "option $1 needs a value"
        value="$2"
        shift
    fi
    shift
    case "$opt" in
        --models | --model) split_list MODELS "$value" ;;
        --methods | --method | --attr_method) split_list METHODS "$value" ;;
        --spatial_ranges | --spatial_range) split_list RANGES "$value" ;;
        --max_iters | --max_iter) split_list ITERS "$value" ;;
        --sampling_times | --sampling_time | --samples_number) split_list SAMPLES "$value" ;;
        --data_dir) DATA_DIR="$value" ;;
        --limit) LIMIT="$value" ;;
        --weights) WEIGHTS="$value" ;;
        --device) DEVICE="$value" ;;
        --attr_prefix) ATTR_PREFIX="$value" ;;
        --scores_prefix | --prefix) SCORES_PREFIX="$value" ;;
        --csv_path | --csv) CSV_PATH="$value" ;;
        --log_dir) LOG_DIR="$value" ;;
        --python) PY="$value" ;;
        --launcher) LAUNCHER="$value" ;;
        --gen_args) split_list GEN_ARGS "$value" ;;
        --eval_args) split_list EVAL_ARGS "$value" ;;
    esac
done

((${#MODELS[@]})) || die "--models is empty"
((${#METHODS[@]})) || die "--methods is empty"
for v in "${RANGES[@]}" "${ITERS[@]}" "${SAMPLES[@]}" ${LIMIT:+"$LIMIT"}; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "'$v' is not a whole number (LA values and --limit)"
done
[[ -n "$WEIGHTS" ]] || WEIGHTS="default"

if [[ -z "$PY" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi
fi
# RUNNER: the words placed before a script's path
RUNNER=()
[[ -n "$LAUNCHER" ]] && read -r -a RUNNER <<<"$LAUNCHER"
if ((${#RUNNER[@]})); then
    if [[ "${RUNNER[0]}" == "torchrun" ]]; then
        RUNNER=("$PY" -m torch.distributed.run "${RUNNER[@]:1}")
    fi
else
    RUNNER=("$PY")
fi
if ((!DRY_RUN)); then
    command -v "${RUNNER[0]}" >/dev/null 2>&1 || die "cannot run '${RUNNER[0]}' (see --python / --launcher)"
fi

# ---------------------------------------------------------------- the plan

# One cell per line: model|weights|method|r|T|S (r T S empty for non-LA methods)
CELLS=()
for spec in "${MODELS[@]}"; do
    model="${spec%%:*}"
    weights="$WEIGHTS"
    [[ "$spec" == *:* ]] && weights="${spec#*:}"
    [[ -n "$model" && -n "$weights" ]] || die "bad model '$spec' (NAME or NAME:WEIGHTS)"
    for method in "${METHODS[@]}"; do
        if [[ "$method" == "la" ]]; then
            for r in "${RANGES[@]}"; do
                for t in "${ITERS[@]}"; do
                    for s in "${SAMPLES[@]}"; do
                        CELLS+=("$model|$weights|la|$r|$t|$s")
                    done
                done
            done
        else
            CELLS+=("$model|$weights|$method|||")
        fi
    done
done

GEN_CMD=()
EVAL_CMD=()
REFRESH_CMD=()
EVAL_LINE=""
LABEL=""
build_cell() {  # sets LABEL, GEN_CMD, EVAL_CMD, REFRESH_CMD, EVAL_LINE for cell "$1"
    local model weights method r t s
    IFS='|' read -r model weights method r t s <<<"$1"
    local common=(--model "$model" --attr_method "$method")
    if [[ -n "$r" ]]; then
        common+=(--spatial_range "$r" --max_iter "$t" --sampling_times "$s")
        LABEL="$model la r=$r T=$t S=$s"
    else
        LABEL="$model $method"
    fi
    [[ "$weights" != "default" ]] && common+=(--weights "$weights") && LABEL="${LABEL/#$model/$model-$weights}"
    [[ -n "$DATA_DIR" ]] && common+=(--data_dir "$DATA_DIR")
    [[ -n "$LIMIT" ]] && common+=(--limit "$LIMIT")
    [[ -n "$DEVICE" ]] && common+=(--device "$DEVICE")
    ((PUBLISHED)) && common+=(--published)
    GEN_CMD=("${RUNNER[@]}" "$ROOT/generate_attributions.py" "${common[@]}" --prefix "$ATTR_PREFIX"
             ${GEN_ARGS[@]+"${GEN_ARGS[@]}"})
    local eval_args=("${common[@]}" --attr_prefix "$ATTR_PREFIX" --prefix "$SCORES_PREFIX"
                     --csv_path "$CSV_PATH" ${EVAL_ARGS[@]+"${EVAL_ARGS[@]}"})
    EVAL_CMD=("${RUNNER[@]}" "$ROOT/eval.py" "${eval_args[@]}")
    # a done cell: eval.py reads the existing scores and rewrites the row, no model, no launcher
    REFRESH_CMD=("$PY" "$ROOT/eval.py" "${eval_args[@]}")
    EVAL_LINE="$(quoted "${eval_args[@]}")"
}

quoted() {  # the command as one shell-ready line
    local out
    printf -v out '%q ' "$@"
    echo "${out% }"
}

# The file stem of every cell's scores, from the one naming rule (labench.identity) applied to
# the exact arguments eval.py gets (so --eval_args "--amp" names the -amp scores file)
STEMS=()
cell_stems() {
    local cell lines=()
    for cell in "${CELLS[@]}"; do
        build_cell "$cell"
        lines+=("$EVAL_LINE")
    done
    # the interpreter that names them: --python's when it runs, else the project's
    local namer="$PY"
    command -v "$namer" >/dev/null 2>&1 || namer="$ROOT/.venv/bin/python"
    [[ -x "$namer" ]] || namer="python3"
    local out
    out="$(printf '%s\n' "${lines[@]}" | PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$namer" -m labench.stems)" ||
        die "cannot name the cells' outputs (see the error above; --python must have the project's requirements)"
    local scores maps k=0
    while read -r scores maps; do
        if [[ "$scores" == "?" ]]; then  # no output name (unknown method): the cell runs and fails on its own
            local m w meth
            IFS='|' read -r m w meth _ <<<"${CELLS[$k]}"
            scores="$m$([[ "$w" != default ]] && echo "-$w")_$meth"
        fi
        STEMS+=("$scores")
        k=$((k + 1))
    done <<<"$out"
    ((${#STEMS[@]} == ${#CELLS[@]})) || die "naming the cells' outputs gave ${#STEMS[@]} names for ${#CELLS[@]} cells"
}

is_done() { [[ -f "$SCORES_PREFIX/${STEM}_scores.npz" ]]; }

N=${#CELLS[@]}
cell_stems
if ((DRY_RUN)); then
    echo "# $SELF plan: $N cells (${#MODELS[@]} models; methods: ${METHODS[*]};" \
        "LA: spatial_range {${RANGES[*]}} x max_iter {${ITERS[*]}} x sampling_times {${SAMPLES[*]}})"
    echo "# run in: $PWD; logs: $LOG_DIR/<stem>.log"
    i=0
    for cell in "${CELLS[@]}"; do
        i=$((i + 1))
        build_cell "$cell"
        STEM="${STEMS[$((i - 1))]}"
        if is_done; then
            echo "# [$i/$N] $LABEL: done ($SCORES_PREFIX/${STEM}_scores.npz exists), skipped; its row is refreshed:"
            quoted "${REFRESH_CMD[@]}"
        else
            echo "# [$i/$N] $LABEL -> $SCORES_PREFIX/${STEM}_scores.npz"
            quoted "${GEN_CMD[@]}"
            quoted "${EVAL_CMD[@]}"
        fi
    done
    exit 0
fi

# ---------------------------------------------------------------- running

mkdir -p "$LOG_DIR" || die "cannot create --log_dir $LOG_DIR"
RAN=()
SKIPPED=()
FAILED=()
START=$SECONDS

summary() {
    local line
    {
        echo
        echo "== $SELF summary: $N cells: ${#RAN[@]} ran, ${#SKIPPED[@]} skipped (done), ${#FAILED[@]} failed ($((SECONDS - START)) s) =="
        for line in ${RAN[@]+"${RAN[@]}"}; do echo "ran:     $line"; done
        for line in ${SKIPPED[@]+"${SKIPPED[@]}"}; do echo "skipped: $line"; done
        for line in ${FAILED[@]+"${FAILED[@]}"}; do echo "FAILED:  $line"; done
    } | tee "$LOG_DIR/summary.txt"
}

on_signal() {
    echo "$SELF: interrupted; rerun the same command to resume" >&2
    FAILED+=("interrupted during cell $CURRENT")
    summary
    exit 130
}
CURRENT=""
trap on_signal INT TERM

run_step() {  # run_step LOG CMD...: append the command and its output to LOG
    local log="$1"
    shift
    {
        echo "=== $(date '+%Y-%m-%d %H:%M:%S') $(quoted "$@")"
    } >>"$log"
    "$@" >>"$log" 2>&1
}

i=0
for cell in "${CELLS[@]}"; do
    i=$((i + 1))
    build_cell "$cell"
    STEM="${STEMS[$((i - 1))]}"
    CURRENT="$LABEL"
    log="$LOG_DIR/$STEM.log"
    t0=$SECONDS
    if is_done; then
        if run_step "$log" "${REFRESH_CMD[@]}"; then
            SKIPPED+=("$LABEL")
            echo "[$i/$N] $LABEL: skipped (done)"
        else
            FAILED+=("$LABEL (refreshing the results.csv row failed; log: $log)")
            echo "[$i/$N] $LABEL: FAILED refreshing its row, see $log"
        fi
        continue
    fi
    echo "[$i/$N] $LABEL ..."
    offset=0
    [[ -f "$log" ]] && offset=$(wc -c <"$log")
    step="generate_attributions.py"
    run_step "$log" "${GEN_CMD[@]}"
    rc=$?
    if ((rc == 0)); then
        step="eval.py"
        run_step "$log" "${EVAL_CMD[@]}"
        rc=$?
    fi
    if ((rc == 0)); then
        RAN+=("$LABEL ($((SECONDS - t0)) s)")
        echo "[$i/$N] $LABEL: done in $((SECONDS - t0)) s"
    else
        # the first one-line error of this run (the scripts print 'error: ...' for bad input)
        why="$(tail -c +"$((offset + 1))" "$log" | grep -m1 '^error:' || true)"
        FAILED+=("$LABEL ($step exit $rc${why:+: $why}; log: $log)")
        echo "[$i/$N] $LABEL: FAILED in $step (exit $rc), see $log"
    fi
done

summary
((${#FAILED[@]} == 0))
