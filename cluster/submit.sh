#!/usr/bin/env bash
# Submit an rlmr training run to a Ray cluster as a Ray job, with the usual checks.
#
#   cluster/submit.sh [--address http://HEAD:8265] CONFIG [--set KEY=VALUE ...] [--resume] [--no-follow]
#
#   cluster/submit.sh --address http://127.0.0.1:8265 configs/qwen2.5-7b-rlmr.yaml
#   cluster/submit.sh configs/tiny.yaml --set trainer.steps=2 --no-follow
#
# 1. checks that the Ray dashboard at --address answers (default: $RAY_ADDRESS
#    when it is an http(s) URL, else http://127.0.0.1:8265), and that you hold
#    a token when the cluster uses token authentication;
# 2. validates CONFIG with the --set overrides locally (`rlmr config --quiet`),
#    so a typo fails in a second instead of after the upload;
# 3. submits `rlmr train CONFIG ...` with `ray job submit --no-wait` and
#    cluster/runtime_env.yaml (which ships this checkout; the nodes must have
#    the package installed), and prints the job id;
# 4. follows the job's logs and exits with its result, unless --no-follow.
#
# Exit status: 0 the job succeeded (or was submitted, with --no-follow);
# 1 it failed or was stopped; 2 bad arguments or an invalid config;
# 3 the cluster is unreachable or refuses you; 130 interrupted (the job keeps running).
#
# Other options: --runtime-env FILE (default cluster/runtime_env.yaml),
# --submission-id ID (default rlmr-<config name>-<UTC time>), --dry-run
# (validate and print the submit command; contacts no cluster).
# Token authentication: `ray job` reads RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
# ~/.ray/auth_token; nothing here stores a token.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROG="cluster/submit.sh"

usage() {
  echo "usage: $(sed -n '4p' "${BASH_SOURCE[0]}" | sed 's/^# *//')"
  echo "Run '$PROG --help' for the details."
}

help() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {  # die STATUS MESSAGE...
  local status=$1
  shift
  echo "$PROG: $*" >&2
  exit "$status"
}

default_address() {
  case "${RAY_ADDRESS:-}" in
    http://* | https://*) echo "$RAY_ADDRESS" ;;
    *) echo "http://127.0.0.1:8265" ;;
  esac
}

ADDRESS="$(default_address)"
RUNTIME_ENV="$REPO_ROOT/cluster/runtime_env.yaml"  # a --runtime-env path is relative to where you are
CONFIG=""
SUBMISSION_ID=""
FOLLOW=1
DRY_RUN=0
RESUME=0
OVERRIDES=()

need_value() {  # need_value OPTION REMAINING_ARGC
  [[ $2 -ge 2 ]] || { usage >&2; die 2 "$1 needs a value"; }
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) help; exit 0 ;;
    --address) need_value "$1" $#; ADDRESS="$2"; shift 2 ;;
    --address=*) ADDRESS="${1#*=}"; shift ;;
    --set) need_value "$1" $#; OVERRIDES+=("$2"); shift 2 ;;
    --set=*) OVERRIDES+=("${1#*=}"); shift ;;
    --resume) RESUME=1; shift ;;
    --no-follow) FOLLOW=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --runtime-env) need_value "$1" $#; RUNTIME_ENV="$2"; shift 2 ;;
    --submission-id) need_value "$1" $#; SUBMISSION_ID="$2"; shift 2 ;;
    -*) usage >&2; die 2 "unknown option: $1" ;;
    *)
      [[ -z "$CONFIG" ]] || { usage >&2; die 2 "one CONFIG only (got '$CONFIG' and '$1')"; }
      CONFIG="$1"; shift ;;
  esac
done

[[ -n "$CONFIG" ]] || { usage >&2; die 2 "missing CONFIG, e.g. configs/tiny.yaml"; }
[[ -f "$CONFIG" ]] || die 2 "$CONFIG: config file not found"
case "$ADDRESS" in
  http://* | https://*) ADDRESS="${ADDRESS%/}" ;;
  *) die 2 "--address must be the dashboard URL, e.g. http://HEAD:8265 (got '$ADDRESS'); 'auto' is for 'rlmr train --address auto' on a cluster node" ;;
esac
for kv in "${OVERRIDES[@]+"${OVERRIDES[@]}"}"; do
  [[ "$kv" == *=* ]] || die 2 "--set $kv: expected KEY=VALUE, e.g. trainer.steps=2"
done

# The job runs in a copy of this checkout, so the config must be inside it.
relative_to_repo() {
  python3 - "$1" "$REPO_ROOT" <<'PY'
import os, sys
path, root = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
rel = os.path.relpath(path, root)
print("" if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel)
PY
}
CONFIG_REL="$(relative_to_repo "$CONFIG")"
[[ -n "$CONFIG_REL" ]] || die 2 "$CONFIG is outside $REPO_ROOT; only files in the repository ship with the job (copy it under configs/)"
RUNTIME_ENV_REL="$(relative_to_repo "$RUNTIME_ENV")"
[[ -f "$RUNTIME_ENV" && -n "$RUNTIME_ENV_REL" ]] || die 2 "$RUNTIME_ENV: runtime env file not found in the repository"
cd "$REPO_ROOT"  # runtime_env.yaml ships working_dir "." = the repository root

# -- 1. validate locally ---------------------------------------------------------------
if command -v rlmr >/dev/null 2>&1; then
  RLMR=(rlmr)
elif python3 -c "import rlmr.cli" >/dev/null 2>&1; then
  RLMR=(python3 -m rlmr.cli)
else
  die 2 "cannot validate $CONFIG_REL: the rlmr package is not installed here (pip install -e . in $REPO_ROOT)"
fi
SET_ARGS=()
for kv in "${OVERRIDES[@]+"${OVERRIDES[@]}"}"; do
  SET_ARGS+=(--set "$kv")
done
if ! "${RLMR[@]}" config "$CONFIG_REL" "${SET_ARGS[@]+"${SET_ARGS[@]}"}" --quiet; then
  die 2 "$CONFIG_REL does not validate (see above); nothing was submitted"
fi

if [[ -z "$SUBMISSION_ID" ]]; then
  name="$(basename "$CONFIG_REL")"
  SUBMISSION_ID="rlmr-${name%.*}-$(date -u +%Y%m%d-%H%M%S)"
fi
ENTRYPOINT=(rlmr train "$CONFIG_REL" "${SET_ARGS[@]+"${SET_ARGS[@]}"}")
[[ $RESUME -eq 1 ]] && ENTRYPOINT+=(--resume)
SUBMIT=(ray job submit --address "$ADDRESS" --runtime-env "$RUNTIME_ENV_REL" --submission-id "$SUBMISSION_ID"
        --no-wait -- "${ENTRYPOINT[@]}")

if [[ $DRY_RUN -eq 1 ]]; then
  echo "$CONFIG_REL is valid; would run (in $REPO_ROOT):"
  printf '%q ' "${SUBMIT[@]}"
  echo
  exit 0
fi

# -- 2. the cluster answers, and will accept us ----------------------------------------
command -v ray >/dev/null 2>&1 || die 3 "the 'ray' command is not on PATH (pip install 'ray[default]')"
http_get() {  # http_get URL: print the body, fail when unreachable or not 2xx
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 10 "$1"
  else
    python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$1"
  fi
}
if ! http_get "$ADDRESS/api/gcs_healthz" >/dev/null 2>&1; then
  die 3 "no Ray dashboard answers at $ADDRESS (is the cluster up? for a remote head: 'ray dashboard cluster/ray-cluster.yaml' or 'kubectl port-forward svc/HEAD-SVC 8265' and use http://127.0.0.1:8265)"
fi
mode="$(http_get "$ADDRESS/api/authentication_mode" 2>/dev/null || true)"
if [[ "$mode" == *'"token"'* && -z "${RAY_AUTH_TOKEN:-}" && -z "${RAY_AUTH_TOKEN_PATH:-}" && ! -s "$HOME/.ray/auth_token" ]]; then
  die 3 "the cluster at $ADDRESS uses token authentication and no token is set here: export RAY_AUTH_TOKEN, or put the cluster's token in ~/.ray/auth_token"
fi

# -- 3. submit ---------------------------------------------------------------------------
echo "submitting $CONFIG_REL to $ADDRESS as job $SUBMISSION_ID"
if ! "${SUBMIT[@]}"; then
  die 3 "ray job submit failed (see above)"
fi
echo "job id: $SUBMISSION_ID"

if [[ $FOLLOW -eq 0 ]]; then
  echo "follow: ray job logs --address $ADDRESS --follow $SUBMISSION_ID"
  echo "status: ray job status --address $ADDRESS $SUBMISSION_ID"
  echo "stop:   ray job stop --address $ADDRESS $SUBMISSION_ID"
  exit 0
fi

# -- 4. follow, then exit with the job's result -----------------------------------------
trap 'echo; echo "$PROG: stopped following; job $SUBMISSION_ID keeps running (ray job stop --address $ADDRESS $SUBMISSION_ID)" >&2; exit 130' INT
ray job logs --address "$ADDRESS" --follow "$SUBMISSION_ID" || true
trap - INT

job_status() {  # the job's state as `ray job status` words it, as one of Ray's JobStatus names
  local out
  out="$(ray job status --address "$ADDRESS" --log-style record --log-color false "$SUBMISSION_ID" 2>&1 || true)"
  case "$out" in
    *"Job '$SUBMISSION_ID' succeeded"*) echo SUCCEEDED ;;
    *"Job '$SUBMISSION_ID' failed"*) echo FAILED ;;
    *"Job '$SUBMISSION_ID' was stopped"*) echo STOPPED ;;
    *) grep -oE "Status for job '[^']*': [A-Z]+" <<<"$out" | grep -oE '[A-Z]+$' | head -n 1 || true ;;
  esac
}
status="$(job_status)"
for _ in $(seq 1 60); do  # the log stream can end a moment before the status settles
  case "$status" in SUCCEEDED | FAILED | STOPPED) break ;; esac
  sleep 2
  status="$(job_status)"
done
echo "job $SUBMISSION_ID: ${status:-UNKNOWN}"
case "$status" in
  SUCCEEDED) exit 0 ;;
  FAILED | STOPPED) exit 1 ;;
  *) die 3 "could not read the final status of $SUBMISSION_ID (ray job status --address $ADDRESS $SUBMISSION_ID)" ;;
esac
