# Shared settings of the local one-node SLURM cluster used by the integration tests (sourced by up.sh / down.sh).
# Everything the scripts start is recorded in $STATE_DIR so that down.sh stops exactly those daemons, by pid.
STATE_DIR="${ORCHMOE_SLURM_STATE:-/run/orchmoe-slurm}"
SLURM_CONF="${ORCHMOE_SLURM_CONF:-/etc/slurm/slurm.conf}"
CONF_MARKER="# written by orchmoe .ci/slurm/up.sh"
PARTITION="${ORCHMOE_SLURM_PARTITION:-debug}"
DAEMONS=(munged slurmctld slurmd)

say() { echo "[slurm-ci] $*"; }
die() { echo "[slurm-ci] ERROR: $*" >&2; exit 1; }

# pid of a daemon we started, or nothing if we did not start it or it has gone away.
started_pid() {
    local name=$1 f="$STATE_DIR/$1.pid" pid
    [[ -f $f ]] || return 0
    pid=$(<"$f")
    # Guard against pid reuse: the process must still be the daemon we recorded.
    if [[ -n $pid && -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]]; then
        echo "$pid"
    fi
}
