#!/usr/bin/env bash
# Prove the SLURM profile on a real SLURM: a throw-away single-node cluster on this machine.
#
#   1. stand up munged, slurmctld and slurmd (SLURM 22.05 from Debian) in one temporary
#      state directory, and run one trivial sbatch job;
#   2. run the smoke config locally (profiles/default) and through the SLURM executor
#      (--workflow-profile profiles/slurm), both from one snapshot of the checkout;
#   3. check that every job of the SLURM run was a SLURM job (tests/slurm/check_run.py jobs);
#   4. check that its results equal the local run's (check_run.py compare: run records
#      except wall time and environment, role arrays, tables, summary and claims);
#   5. on exit, cancel what is left, stop the daemons it started (by pid), remove the
#      slurm.conf link and delete the state.
#
# Usage: tests/slurm/run_slurm_test.sh [--cluster-only | --serve] [--keep]
#   --cluster-only  steps 1 and 5 only (check that SLURM can be stood up here)
#   --serve         step 1, then keep the cluster up until interrupted (for debugging:
#                   it prints the SLURM_CONF to export in another shell)
#   --keep          keep the temporary state directory (logs, both result trees)
# Exit status: 0 passed, 1 failed, 77 skipped: SLURM cannot be stood up here (not root, no
# apt-get, the install failed, the machine has a SLURM configuration of its own); the
# reason is printed as "SKIP: <reason>".  With GSMOE_SLURM_REQUIRED=1 a skip is a failure.
# Environment:
#   GSMOE_SLURM_CONFIG     config to run (default tests/workflow/config_smoke.yaml)
#   GSMOE_SLURM_REFERENCE  working directory of an earlier local run of that config to
#                          compare with, instead of making a local run here
#   GSMOE_SLURM_ARGS       extra arguments for the SLURM run, e.g. job grouping:
#                          "--groups train_seeds_0_1=train --group-components train=9 --cores 2"
#   GSMOE_SLURM_TIMEOUT    seconds each Snakemake run may take (default 1800)
#   GSMOE_SLURM_TMP        parent of the temporary state directory (default $TMPDIR or /tmp)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO/tests/slurm"
CLUSTER_ONLY=0
SERVE=0
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --cluster-only) CLUSTER_ONLY=1 ;;
        --serve) SERVE=1 ;;
        --keep) KEEP=1 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

SKIP_STATUS=77
log() { printf '[slurm-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() { log "FAIL: $*"; exit 1; }
skip() {
    if [[ "${GSMOE_SLURM_REQUIRED:-0}" == 1 ]]; then
        fail "cannot stand up SLURM and GSMOE_SLURM_REQUIRED=1: $*"
    fi
    echo "SKIP: $*"
    exit "$SKIP_STATUS"
}

# ---------------------------------------------------------------- preconditions
[[ $(id -u) == 0 ]] || skip "needs root to start munged and slurmd (running as $(id -un))"

need_install=0
for cmd in munged munge slurmctld slurmd sbatch squeue sinfo scancel; do
    command -v "$cmd" >/dev/null || need_install=1
done
if [[ $need_install == 1 ]]; then
    command -v apt-get >/dev/null || skip "SLURM/munge are not installed and there is no apt-get"
    log "installing slurm-wlm and munge with apt-get"
    apt_log=$(mktemp)
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        slurm-wlm munge; } >"$apt_log" 2>&1; then
        reason=$(tail -n 3 "$apt_log" | tr '\n' ' ')
        rm -f "$apt_log"
        skip "apt-get install slurm-wlm munge failed: $reason"
    fi
    rm -f "$apt_log"
fi

if [[ -x "$REPO/.venv/bin/snakemake" ]]; then
    BIN="$REPO/.venv/bin"
else
    SNAKEMAKE=$(command -v snakemake) || fail "snakemake not found (make install)"
    BIN=$(dirname "$SNAKEMAKE")
fi
PY="$BIN/python"
export PATH="$BIN:$PATH"

# One test cluster per machine at a time: later runs wait here.
LOCK_DIR=/run/lock
[[ -d $LOCK_DIR ]] || LOCK_DIR=${TMPDIR:-/tmp}
exec 9>"$LOCK_DIR/gsmoe-slurm-test.lock"
flock -w 1800 9 || fail "another SLURM test held $LOCK_DIR/gsmoe-slurm-test.lock for 30 minutes"

# Job steps cannot be pointed at our slurm.conf with SLURM_CONF: the plugin's job step
# executor strips every SLURM_* variable before it calls srun.  So srun must find the file
# where SLURM clients look when SLURM_CONF is unset: /etc/slurm/slurm.conf, else
# /run/slurm/conf/slurm.conf (where a configless slurmd caches it).  We link the latter for
# the duration of the test and never touch an existing SLURM configuration.
CONF_LINK=/run/slurm/conf/slurm.conf
if [[ -e /etc/slurm/slurm.conf ]]; then
    skip "/etc/slurm/slurm.conf exists: this machine has its own SLURM configuration, which" \
        "job steps would read instead of the test cluster's"
fi
if [[ -L $CONF_LINK && $(readlink "$CONF_LINK") == */gsmoe-slurm.*/slurm.conf \
    && ! -e $(readlink "$CONF_LINK") ]]; then
    rm -f "$CONF_LINK"  # left behind by an earlier run that was killed
fi
if [[ -e $CONF_LINK || -L $CONF_LINK ]]; then
    skip "$CONF_LINK exists: this machine runs a configless slurmd of its own"
fi

# ---------------------------------------------------------------- temporary state, cleanup
STATE=$(mktemp -d "${GSMOE_SLURM_TMP:-${TMPDIR:-/tmp}}/gsmoe-slurm.XXXXXX")
chmod 755 "$STATE"
mkdir -p "$STATE"/{munge,ctld,spool,run,log,work}
MUNGED_PID=""
CTLD_PID=""
SLURMD_PID=""
MADE_DIRS=()  # directories outside $STATE that we created, innermost last
LINKED=0

stop_pid() {  # stop_pid NAME PID: TERM, wait up to 10 s, then KILL
    local name=$1 pid=$2 i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { log "stopped $name (pid $pid)"; return 0; }
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if [[ -n "$CTLD_PID" ]] && kill -0 "$CTLD_PID" 2>/dev/null; then
        # Every job of this private cluster is ours: cancel leftovers so slurmd's job steps end.
        scancel --user="$(id -un)" 2>/dev/null || true
        for i in $(seq 30); do
            [[ -z "$(squeue -h -t RUNNING,PENDING,COMPLETING -o %i 2>/dev/null)" ]] && break
            sleep 0.5
        done
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    stop_pid munged "$MUNGED_PID"
    if [[ $LINKED == 1 ]]; then
        rm -f "$CONF_LINK"
        for ((i = ${#MADE_DIRS[@]} - 1; i >= 0; i--)); do rmdir "${MADE_DIRS[i]}" 2>/dev/null || true; done
    fi
    if [[ $rc != 0 && $rc != "$SKIP_STATUS" && -d "$STATE/log" ]]; then
        for f in "$STATE"/log/*.log; do
            [[ -s "$f" ]] || continue
            echo "----- last lines of $(basename "$f")"
            tail -n 15 "$f"
        done
    fi
    if [[ $KEEP == 1 ]]; then
        log "kept the state directory $STATE"
    else
        rm -rf "$STATE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- munge (private key, socket)
MUNGE_SOCKET="$STATE/munge/munge.socket"
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$STATE/munge/munge.key"
munged_args=(--socket="$MUNGE_SOCKET" --key-file="$STATE/munge/munge.key"
    --log-file="$STATE/munge/munged.log" --pid-file="$STATE/munge/munged.pid"
    --seed-file="$STATE/munge/munged.seed")
if id munge >/dev/null 2>&1; then
    chown -R munge:munge "$STATE/munge"
    chmod 755 "$STATE/munge"  # clients need to reach the socket
    runuser -u munge -- munged "${munged_args[@]}" || fail "munged did not start"
else
    munged --force "${munged_args[@]}" || fail "munged did not start"
fi
for _ in $(seq 50); do [[ -s "$STATE/munge/munged.pid" ]] && break; sleep 0.1; done
MUNGED_PID=$(cat "$STATE/munge/munged.pid" 2>/dev/null) || fail "munged wrote no pid file"
munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null \
    || fail "munge credential round trip failed"
log "munged up (pid $MUNGED_PID)"

# ---------------------------------------------------------------- slurm.conf
read -r CTLD_PORT SLURMD_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
CPUS=$(nproc)
MEM_AVAILABLE_KB=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
MEM_MB=$((MEM_AVAILABLE_KB * 8 / 10 / 1024))  # a bit under what is free now
sed -e "s|@STATE@|$STATE|g" -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
    -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
    -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
    "$HERE/slurm.conf.in" >"$STATE/slurm.conf"
export SLURM_CONF="$STATE/slurm.conf"
for d in /run/slurm /run/slurm/conf; do
    [[ -d $d ]] || { mkdir "$d" && MADE_DIRS+=("$d"); }
done
ln -s "$SLURM_CONF" "$CONF_LINK"
LINKED=1
# Keep an outer SLURM job's settings out of this cluster's clients.
unset SLURM_JOB_ID SLURM_JOBID SBATCH_ACCOUNT SBATCH_PARTITION SLURM_ACCOUNT SLURM_PARTITION

# ---------------------------------------------------------------- slurmctld, slurmd
slurmctld -D -c >"$STATE/log/slurmctld.stdout" 2>&1 &
CTLD_PID=$!
slurmd -D -N localhost >"$STATE/log/slurmd.stdout" 2>&1 &
SLURMD_PID=$!
log "slurmctld (pid $CTLD_PID, port $CTLD_PORT), slurmd (pid $SLURMD_PID, port $SLURMD_PORT):" \
    "node localhost with $CPUS CPUs, $MEM_MB MB"
node_state=""
for _ in $(seq 120); do
    kill -0 "$CTLD_PID" 2>/dev/null || fail "slurmctld exited"
    kill -0 "$SLURMD_PID" 2>/dev/null || fail "slurmd exited"
    node_state=$(sinfo -h -N -n localhost -o %t 2>/dev/null || true)
    [[ "$node_state" == idle ]] && break
    sleep 0.5
done
[[ "$node_state" == idle ]] || fail "node not idle after 60 s (state '$node_state')"
log "sinfo: $(sinfo -h -o '%P %a %D %t %c CPUs %m MB' | tr '\n' ' ')"

# shellcheck disable=SC2016  # $SLURM_JOB_ID is for the job to expand
hello_id=$(sbatch --parsable --wait -o "$STATE/log/hello.%j.out" \
    --wrap 'echo "hello from SLURM job $SLURM_JOB_ID on $(hostname)"') \
    || fail "trivial sbatch job failed"
grep -q "hello from SLURM job $hello_id" "$STATE/log/hello.$hello_id.out" \
    || fail "trivial sbatch job wrote no output"
log "trivial job $hello_id ran: $(cat "$STATE/log/hello.$hello_id.out")"

if [[ $SERVE == 1 ]]; then
    log "cluster up; in another shell: export SLURM_CONF=$SLURM_CONF  (Ctrl-C here ends it)"
    while kill -0 "$CTLD_PID" 2>/dev/null && kill -0 "$SLURMD_PID" 2>/dev/null; do sleep 2; done
    fail "a SLURM daemon exited"
fi
if [[ $CLUSTER_ONLY == 1 ]]; then
    log "PASS (cluster only)"
    exit 0
fi

# ---------------------------------------------------------------- the workflow on SLURM
CONFIG=${GSMOE_SLURM_CONFIG:-$REPO/tests/workflow/config_smoke.yaml}
[[ -f "$REPO/Snakefile" ]] || fail "no Snakefile in $REPO"
[[ -f "$CONFIG" ]] || fail "no config $CONFIG"
CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")

# Both runs use one snapshot of the checkout (tracked and untracked files, without the
# venv, git metadata and outputs), so that edits made meanwhile cannot make them differ.
# The config resolves relative paths against the checkout (mirror: ../shared/datasets), so
# the snapshot gets the checkout's sibling shared/ as a link.
SNAP_PARENT="$STATE/checkout"
SNAP="$SNAP_PARENT/$(basename "$REPO")"
mkdir -p "$SNAP"
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./resources --exclude=./results \
    --exclude=./logs --exclude=./benchmarks --exclude=.snakemake --exclude=__pycache__ \
    -cf - . | tar -C "$SNAP" -xf -
if [[ -e "$REPO/../shared" ]]; then ln -s "$(cd "$REPO/../shared" && pwd)" "$SNAP_PARENT/shared"; fi
if [[ "$CONFIG" == "$REPO"/* ]]; then CONFIG="$SNAP/${CONFIG#"$REPO"/}"; fi

read -r -a EXTRA_ARGS <<<"${GSMOE_SLURM_ARGS:-}"
RUN_TIMEOUT=${GSMOE_SLURM_TIMEOUT:-1800}
cd "$SNAP"
RUN=(timeout -k 60 "$RUN_TIMEOUT" snakemake --snakefile "$SNAP/Snakefile" --configfile "$CONFIG")
run_failed() {  # run_failed WHAT LOG
    echo "----- last lines of $2"
    tail -n 60 "$2"
    fail "$1"
}

# The reference: a local run of the same config with the workstation profile.
if [[ -n "${GSMOE_SLURM_REFERENCE:-}" ]]; then
    WORK_LOCAL=$GSMOE_SLURM_REFERENCE
    [[ -d "$WORK_LOCAL/results/runs" ]] || fail "GSMOE_SLURM_REFERENCE=$WORK_LOCAL has no results/runs"
    log "local reference: $WORK_LOCAL (given)"
else
    WORK_LOCAL="$STATE/work/local"
    mkdir -p "$WORK_LOCAL"
    log "local run of ${CONFIG#"$SNAP"/} (profiles/default, $CPUS cores) in $WORK_LOCAL"
    t0=$SECONDS
    "${RUN[@]}" --directory "$WORK_LOCAL" --workflow-profile "$SNAP/profiles/default" \
        --cores "$CPUS" >"$STATE/log/snakemake-local.log" 2>&1 \
        || run_failed "the local run failed" "$STATE/log/snakemake-local.log"
    log "local run done in $((SECONDS - t0)) s"
fi

# The same config through the SLURM profile.  Test-cluster settings on top: no accounting
# here, so job status comes from squeue; poll soon (jobs take seconds, not hours); keep the
# plugin's logs of successful jobs for the check below; local disk needs no long latency wait.
WORK_SLURM="$STATE/work/slurm"
mkdir -p "$WORK_SLURM"
log "SLURM run of ${CONFIG#"$SNAP"/} (profiles/slurm${EXTRA_ARGS[*]:+ + ${EXTRA_ARGS[*]}}) in $WORK_SLURM"
t0=$SECONDS
"${RUN[@]}" --directory "$WORK_SLURM" --workflow-profile "$SNAP/profiles/slurm" \
    --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 \
    --slurm-keep-successful-logs --latency-wait 5 "${EXTRA_ARGS[@]}" \
    >"$STATE/log/snakemake-slurm.log" 2>&1 \
    || run_failed "the SLURM run failed" "$STATE/log/snakemake-slurm.log"
SLURM_SECONDS=$((SECONDS - t0))
log "SLURM run done in $SLURM_SECONDS s"

"$PY" "$HERE/check_run.py" jobs "$STATE/log/snakemake-slurm.log" "$WORK_SLURM" \
    "$STATE/log/slurmctld.log" "$SNAP/Snakefile" "$CONFIG" || fail "not every job ran as a SLURM job"
"$PY" "$HERE/check_run.py" compare "$WORK_SLURM" "$WORK_LOCAL" \
    || fail "the SLURM run's results differ from the local run's"
log "PASS: every job ran in SLURM and the results equal the local run's (SLURM run $SLURM_SECONDS s)"
