#!/usr/bin/env bash
# Bring up a real one-node SLURM cluster on this machine for the integration tests:
#   apt install slurm-wlm + munge (if missing) -> slurm.conf for this host -> munged, slurmctld, slurmd -> node idle.
# Idempotent: a second call finds its own daemons alive and only re-checks that the node is idle.
# Needs root (CI runs as root on a fresh Debian machine). Stop with .ci/slurm/down.sh.
# Tunables: ORCHMOE_SLURM_STATE (pid folder), ORCHMOE_SLURM_CONF, ORCHMOE_SLURM_PARTITION (default debug),
#           ORCHMOE_SLURM_WAIT (seconds to wait for an idle node, default 90).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"
start=$(date +%s)

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts system daemons); try: sudo bash $0"

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and apt-get is not available (Debian/Ubuntu only)"
    say "installing slurm-wlm and munge with apt-get (a minute or two)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || die "apt-get update failed: is a Debian mirror reachable?"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || die "apt-get install slurm-wlm munge failed (see the apt output above)"
fi
say "$(slurmctld -V), $(munged --version 2>&1 | head -1 | awk "{print \$1}")"

mkdir -p "$STATE_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm /etc/slurm

# 2. slurm.conf for this host. Rewritten on every call (cheap; it only changes if the machine changed), but never
#    over a configuration somebody else wrote: that one is moved aside and restored by down.sh.
host=$(hostname -s)
cpus=$(nproc)
mem_total=$(free -m | awk '/^Mem:/ {print $2}')
# slurmd drains a node that claims more memory than it has; keep a margin for the OS.
real_mem=$(( mem_total - (mem_total / 20 > 512 ? mem_total / 20 : 512) ))
(( real_mem > 256 )) || die "only ${mem_total} MiB of memory: too little for a SLURM node"
if [[ -f $SLURM_CONF ]] && ! grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
    say "moving the existing $SLURM_CONF aside to $SLURM_CONF.orchmoe-backup (down.sh puts it back)"
    mv "$SLURM_CONF" "$SLURM_CONF.orchmoe-backup"
fi
conf_tmp=$(mktemp "$SLURM_CONF.XXXX")
cat >"$conf_tmp" <<EOF
$CONF_MARKER on $(date -u +%Y-%m-%dT%H:%M:%SZ)
# No slurmdbd/accounting: the executor plugin needs slurm-status-command=squeue and slurm-no-account
# (see docs/infrastructure.md). MinJobAge keeps finished jobs visible to squeue long enough for status checks.
ClusterName=localci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=$PARTITION Default=YES Nodes=ALL MaxTime=INFINITE State=UP
EOF
chmod 644 "$conf_tmp"
mv "$conf_tmp" "$SLURM_CONF"
say "slurm.conf: node $host, CPUs=$cpus, RealMemory=$real_mem MiB, partition $PARTITION"

dump_logs() {
    for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log "$STATE_DIR"/*.out; do
        [[ -f $f ]] && { echo "---- last lines of $f"; tail -n 15 "$f"; }
    done >&2
}

# Start a daemon in the foreground of a new session so that $! is the daemon itself (no fork, no guessing from
# pid files) and record it; down.sh kills exactly that pid.
launch() {
    local name=$1; shift
    setsid "$@" >"$STATE_DIR/$name.out" 2>&1 </dev/null &
    local pid=$!
    sleep 1
    if [[ ! -r /proc/$pid/comm || $(</proc/"$pid"/comm) != "$name" ]]; then
        dump_logs
        die "$name did not start (command: $*); its output is in $STATE_DIR/$name.out"
    fi
    echo "$pid" >"$STATE_DIR/$name.pid"
    say "started $name (pid $pid)"
}

# 3. munge: the key is created by the package; run munged as its own user.
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key; else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
if [[ -n $(started_pid munged) ]]; then
    say "munged already running (pid $(started_pid munged), started by us)"
elif munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "a munged started by someone else is already answering: using it (down.sh will leave it alone)"
else
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || { dump_logs; die "munge does not answer (munge -n | unmunge failed)"; }
fi

# 4. slurmctld then slurmd, both as root, in the foreground of their own sessions.
for d in slurmctld slurmd; do
    if [[ -n $(started_pid $d) ]]; then
        say "$d already running (pid $(started_pid $d), started by us)"
    elif pgrep -x "$d" >/dev/null; then
        die "a $d not started by these scripts is running (pid $(pgrep -x "$d" | tr '\n' ' ')); stop it first"
    else
        # -i ignores stale state from an earlier run on this machine; -D stays in the foreground.
        if [[ $d == slurmctld ]]; then launch slurmctld /usr/sbin/slurmctld -D -i -f "$SLURM_CONF"
        else launch slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF"; fi
    fi
done

# 5. Wait for the node to be idle (or mixed/allocated when jobs from an earlier call are still running).
wait_s=${ORCHMOE_SLURM_WAIT:-90}
state=""
for ((i = 0; i < wait_s; i++)); do
    state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -1 || true)
    case $state in
        idle | mix | alloc) break ;;
        drain* | down* | inval* | drng | fail*)
            # ReturnToService=2 usually does this itself; a stale state from an earlier run needs a nudge.
            scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
case $state in
    idle | mix | alloc) ;;
    *) dump_logs; die "node $host is '${state:-not reported}' after ${wait_s}s, expected idle (sinfo: $(sinfo 2>&1 | tr '\n' ' '))" ;;
esac
say "node $host is $state; partition $PARTITION ready ($(( $(date +%s) - start )) s)"
