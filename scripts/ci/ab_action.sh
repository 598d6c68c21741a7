#!/usr/bin/env bash
# The logic behind the steps of action.yml (pfdeploy's A/B gate for GitHub Actions), kept in a
# script so that tests/test_ci_workflows.py can run it without GitHub. Each step of the action
# calls one subcommand:
#
#   ab_action.sh check    the inputs make sense (a base ref, a known --fail-on, numbers)
#   ab_action.sh setup    one venv per checkout: DIR/.venv with `pip install -e 'DIR[EXTRAS]'`
#   ab_action.sh run      pfdeploy ab BASE HEAD with the head's pfdeploy; step outputs (the verdict
#                         counts, exit-code) and the files of the comment artifact in AB_OUT
#                         (comment.md, pr-number, head-sha, ab.json, ab.log, exit-code); exits 0
#                         once ab ran, so that the artifact is kept: the `gate` step fails the job
#   ab_action.sh gate     exit with the status that `run` recorded (AB_EXIT_CODE)
#
# Inputs come as environment variables (action.yml maps its inputs onto them; an input never
# becomes part of a command line other than as one quoted argument):
#   AB_BASE_REF AB_BASE_PATH AB_HEAD_PATH AB_MODELS AB_BACKENDS AB_THRESHOLD AB_BUDGET AB_THREADS
#   AB_FAIL_ON AB_ARGS AB_EXTRAS AB_PIP_ARGS AB_PR_NUMBER AB_HEAD_SHA AB_OUT
#   AB_PYTHON      the interpreter that makes the venvs and reads ab's JSON (default python3)
#   AB_DRY_RUN=1   setup prints its commands instead of running them
#   PFDEPLOY_AB_BASE, PFDEPLOY_AB_HEAD   what ab gets as BASE and HEAD (default BASE_PATH/.venv and
#                  HEAD_PATH/.venv); PFDEPLOY_AB_COMMAND the command that runs pfdeploy (default
#                  HEAD_PATH/.venv/bin/pfdeploy, split on spaces, e.g. "/usr/bin/python3 -m pfdeploy")
#   GITHUB_OUTPUT, GITHUB_STEP_SUMMARY   as GitHub sets them (ignored when unset)
set -euo pipefail

die() { echo "::error::pfdeploy ab action: $*" >&2; exit 2; }

python_bin="${AB_PYTHON:-python3}"
base_path="${AB_BASE_PATH:-.pfdeploy-ab-base}"
head_path="${AB_HEAD_PATH:-.}"
out="${AB_OUT:-${RUNNER_TEMP:-/tmp}/pfdeploy-ab}"

output() {  # output NAME VALUE: a step output (GitHub) and a line on stdout (logs, tests)
  echo "$1=$2"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "$1=$2" >> "$GITHUB_OUTPUT"; fi
}

summary() {  # summary TEXT: append to the job summary when there is one
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then printf '%s\n' "$1" >> "$GITHUB_STEP_SUMMARY"; fi
}

is_number() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }

cmd_check() {
  [ -n "${AB_BASE_REF:-}" ] || die "base-ref is empty (this is not a pull_request event): set the base-ref input"
  case "${AB_FAIL_ON:-regression}" in
    regression|inconclusive|never) ;;
    *) die "fail-on must be regression, inconclusive or never, not '${AB_FAIL_ON}'" ;;
  esac
  if [ -n "${AB_THRESHOLD:-}" ] && ! is_number "$AB_THRESHOLD"; then
    die "threshold must be a number such as 0.05, not '${AB_THRESHOLD}'"
  fi
  if [ -n "${AB_BUDGET:-}" ] && ! is_number "$AB_BUDGET"; then
    die "budget must be a number of seconds, not '${AB_BUDGET}'"
  fi
  if [ -n "${AB_THREADS:-}" ] && ! [[ "$AB_THREADS" =~ ^[0-9]+$ ]]; then
    die "threads must be a whole number, not '${AB_THREADS}'"
  fi
  echo "pfdeploy ab: base ${AB_BASE_REF} in ${base_path}, head in ${head_path}"
}

run_or_print() {  # the command, or with AB_DRY_RUN=1 its shell-quoted text after "+ "
  if [ "${AB_DRY_RUN:-0}" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

cmd_setup() {
  local extras="${AB_EXTRAS-cpu}" dir abs spec
  local -a pip_args=()
  # pip-args is a list of options (e.g. an extra index for CPU-only torch): split on whitespace
  read -r -a pip_args <<< "${AB_PIP_ARGS:-}"
  for dir in "$base_path" "$head_path"; do
    [ -f "$dir/pyproject.toml" ] || die "$dir has no pyproject.toml: not a pfdeploy checkout"
    abs="$(cd "$dir" && pwd)"
    spec="$abs"
    if [ -n "$extras" ]; then spec="${abs}[${extras}]"; fi
    run_or_print "$python_bin" -m venv "$abs/.venv"
    run_or_print "$abs/.venv/bin/python" -m pip install --quiet --upgrade pip
    run_or_print "$abs/.venv/bin/python" -m pip install --quiet ${pip_args[@]+"${pip_args[@]}"} -e "$spec"
  done
}

cmd_run() {
  local base="${PFDEPLOY_AB_BASE:-$base_path/.venv}" head="${PFDEPLOY_AB_HEAD:-$head_path/.venv}"
  local -a pfdeploy extra args
  read -r -a pfdeploy <<< "${PFDEPLOY_AB_COMMAND:-$head_path/.venv/bin/pfdeploy}"
  read -r -a extra <<< "${AB_ARGS:-}"
  mkdir -p "$out"
  rm -f "$out/comment.md" "$out/ab.json" "$out/ab.log"
  # what the comment workflow needs besides the Markdown: which PR, and which head it measured
  printf '%s\n' "${AB_PR_NUMBER:-}" > "$out/pr-number"
  printf '%s\n' "${AB_HEAD_SHA:-}" > "$out/head-sha"

  args=(ab "$base" "$head" --fail-on "${AB_FAIL_ON:-regression}" --markdown "$out/comment.md" --json)
  if [ -n "${AB_THRESHOLD:-}" ]; then args+=(--threshold "$AB_THRESHOLD"); fi
  if [ -n "${AB_MODELS:-}" ]; then args+=(--models "$AB_MODELS"); fi
  if [ -n "${AB_BACKENDS:-}" ]; then args+=(--backends "$AB_BACKENDS"); fi
  if [ -n "${AB_BUDGET:-}" ]; then args+=(--budget "$AB_BUDGET"); fi
  if [ -n "${AB_THREADS:-}" ]; then args+=(--threads "$AB_THREADS"); fi
  args+=(${extra[@]+"${extra[@]}"})  # empty arrays: bash < 4.4 with set -u

  printf 'running:'; printf ' %q' "${pfdeploy[@]}" "${args[@]}"; printf '\n'
  # ab's JSON goes to a file; its messages stay on the log (and are kept for the comment)
  local code=0
  set +e
  "${pfdeploy[@]}" "${args[@]}" 2>&1 >"$out/ab.json" | tee "$out/ab.log" >&2
  code=${PIPESTATUS[0]}
  set -e

  local counts
  counts="$("$python_bin" - "$out/ab.json" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as f:
        counts = json.load(f)["counts"]
except Exception:  # no JSON: ab failed before its verdicts (the exit code says how)
    counts = {}
for key, name in (("regression", "regressions"), ("improvement", "improvements"),
                  ("equivalent", "equivalent"), ("inconclusive", "inconclusive"),
                  ("not_compared", "not-compared")):
    value = counts.get(key, "")
    print(f"{name}={value if isinstance(value, int) else ''}")
PY
)"
  local line
  while IFS= read -r line; do output "${line%%=*}" "${line#*=}"; done <<< "$counts"
  output exit-code "$code"
  printf '%s\n' "$code" > "$out/exit-code"
  output markdown "$out/comment.md"

  if [ ! -s "$out/comment.md" ]; then
    # ab wrote no verdict table (bad input, a crash): say so where the table would have been
    {
      echo "### pfdeploy ab: no verdict (exit $code)"
      echo
      echo "pfdeploy ab stopped before its verdict table. Its last messages:"
      echo
      echo '```'
      tail -n 20 "$out/ab.log"
      echo '```'
    } > "$out/comment.md"
    summary "$(cat "$out/comment.md")"
  fi
}

cmd_gate() {
  local code="${AB_EXIT_CODE:-}"
  [[ "$code" =~ ^[0-9]+$ ]] || die "no exit status recorded by the pfdeploy ab step"
  if [ "$code" != 0 ]; then echo "pfdeploy ab exited $code (see the job summary)" >&2; fi
  exit "$code"
}

case "${1:-}" in
  check) cmd_check ;;
  setup) cmd_setup ;;
  run) cmd_run ;;
  gate) cmd_gate ;;
  *) echo "usage: $0 check|setup|run|gate (inputs in AB_* variables, see the comment at the top)" >&2; exit 2 ;;
esac
