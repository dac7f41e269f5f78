#!/usr/bin/env bash
# Stop exactly the daemons .ci/slurm/up.sh started, by the pids it recorded (nothing found by name), after
# cancelling the jobs still queued on that cluster. Safe to call twice or when up.sh never ran.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

if [[ ! -d $STATE_DIR ]]; then
    say "nothing to stop ($STATE_DIR does not exist)"
    exit 0
fi

# Jobs left behind by a failed test would keep slurmstepd children alive; cancel them while slurmctld still runs,
# but only on the cluster we started.
if [[ -n $(started_pid slurmctld) ]] && command -v scancel >/dev/null; then
    scancel --quiet --full "$(hostname -s)" >/dev/null 2>&1 || true
    scancel --quiet --partition "$PARTITION" >/dev/null 2>&1 || true
fi

failed=0
# Reverse start order: slurmd, slurmctld, munged.
for ((k = ${#DAEMONS[@]} - 1; k >= 0; k--)); do
    name=${DAEMONS[k]}
    pid=$(started_pid "$name")
    if [[ -z $pid ]]; then
        [[ -f $STATE_DIR/$name.pid ]] && say "$name (pid $(<"$STATE_DIR/$name.pid")) is not running any more"
        rm -f "$STATE_DIR/$name.pid"
        continue
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    if [[ -d /proc/$pid ]]; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    if [[ -d /proc/$pid && $(</proc/"$pid"/stat) != *") Z "* ]]; then
        echo "[slurm-ci] ERROR: could not stop $name (pid $pid)" >&2
        failed=1
    else
        say "stopped $name (pid $pid)"
        rm -f "$STATE_DIR/$name.pid"
    fi
done

if [[ -f $SLURM_CONF.orchmoe-backup ]]; then
    mv "$SLURM_CONF.orchmoe-backup" "$SLURM_CONF"
    say "restored the previous $SLURM_CONF"
fi
exit $failed
