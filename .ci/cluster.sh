#!/usr/bin/env bash
# Start a real single-node Grid Engine and/or Slurm on this machine, for memo's cluster
# tests (tests/test_cluster.py, the tests marked sge and slurm):
#
#   bash .ci/cluster.sh sge     # then MEMO_TEST_SGE=1 python -m pytest tests/test_cluster.py
#   bash .ci/cluster.sh slurm   # then MEMO_TEST_SLURM=1 python -m pytest tests/test_cluster.py
#   bash .ci/cluster.sh all
#
# Meant for a throwaway Debian/Ubuntu machine or container (CI): run as root; needs no
# systemd. It installs the distribution's packages, makes this host master, submit and
# execution host (Grid Engine: queue all.q and parallel environment smp; Slurm: partition
# debug), starts the daemons in the background, waits until the host takes jobs and runs
# one job to prove it. Running it again starts only what is not running (after stopping the
# daemons, let them exit first: sge_qmaster takes ~10 s). On failure it exits non-zero and
# says what failed. On a fresh machine each scheduler takes about 20 s (mostly apt); when
# all runs already, about 5 s (the test jobs).
set -euo pipefail

HOST=$(hostname)
CPUS=${MEMO_CLUSTER_CPUS:-2} # slots / CPUs of the one node
if [ "$(nproc)" -lt "$CPUS" ]; then CPUS=$(nproc); fi
APT_LOG=/tmp/memo-cluster-apt.log
MARK="# written by memo's .ci/cluster.sh"

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}
say() { echo "cluster.sh: $*"; }
trap 'echo "cluster.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# install PACKAGE...: apt-get install those not installed yet, starting no daemon.
install() {
    local missing=() p guard=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]} (log: $APT_LOG)"
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -q >>"$APT_LOG" 2>&1 || die "apt-get update failed; see $APT_LOG"
        APT_UPDATED=1
    fi
    # Package scripts would start the daemons through an init system this machine may not
    # run; policy-rc.d's 101 tells them not to, and this script starts the daemons itself.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >>"$APT_LOG" 2>&1 || status=$?
    if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ "$status" -ne 0 ]; then
        tail -n 20 "$APT_LOG" >&2
        die "apt-get install ${missing[*]} failed (exit $status); see $APT_LOG"
    fi
}

# running NAME: a live process NAME (a zombie left for a parent to reap does not count).
running() { ps -C "$1" -o stat= | grep -qv '^Z'; }

# up NAME CHECK SECONDS LOG COMMAND...: wait until a live NAME runs and the function CHECK
# succeeds, starting NAME with COMMAND whenever none is alive (an old one may be stopping).
up() {
    local name=$1 check=$2 limit=$3 log=$4 i
    shift 4
    for ((i = 0; i < limit; i++)); do
        if ! running "$name"; then
            say "starting $name"
            "$@" || die "$name did not start; see $log"
        elif "$check" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    die "$name: not ready after $limit s ($check keeps failing); see $log"
}
ensure_ps() { command -v ps >/dev/null || install procps; }

# ---------------------------------------------------------------------------------------
# Grid Engine (gridengine 8.1.9 from Debian)

sge_master_ok() { qconf -sh; }
# The host takes jobs once its execd has reported a load.
sge_exec_ok() { qhost -h "$HOST" | awk -v h="$HOST" '$1 == h && $7 != "-" {ok = 1} END {exit !ok}'; }

start_sge() {
    export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
    local common=$SGE_ROOT/$SGE_CELL/common spool=/var/spool/gridengine conf
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridenginemaster string $HOST
gridengine-master shared/gridengineconfig boolean true
gridengine-master shared/gridenginecell string $SGE_CELL
gridengine-master shared/gridenginemaster string $HOST
EOF
    install gridengine-master gridengine-exec gridengine-client
    ensure_ps
    id sgeadmin >/dev/null 2>&1 || die "the packages did not create the user sgeadmin"
    mkdir -p "$common" /var/run/gridengine "$spool/qmaster" "$spool/execd" "$spool/spooldb"
    chown sgeadmin:sgeadmin "$common" /var/run/gridengine "$spool/qmaster" "$spool/execd" \
        "$spool/spooldb"
    if [ ! -e "$spool/spooldb/sge" ]; then # the package's postinst did not set up the spool
        su -s /bin/sh -c "/usr/share/gridengine/scripts/init_cluster $SGE_ROOT $SGE_CELL \
            $spool/spooldb sgeadmin" sgeadmin || die "init_cluster failed"
    fi
    [ -e "$common/bootstrap" ] || die "$common/bootstrap is missing; reinstall gridengine-common"
    echo "$HOST" >"$common/act_qmaster"
    # Grid Engine refuses a client whose address resolves to another name than the one it
    # gives itself. In containers the host name often resolves to 127.0.0.1, which resolves
    # back to "localhost": host_aliases makes such names this host.
    local ip name aliases=""
    for ip in $(getent ahostsv4 "$HOST" | awk '{print $1}' | sort -u); do
        for name in $(getent hosts "$ip" | awk '{for (i = 2; i <= NF; i++) print $i}'); do
            if [ "$name" != "$HOST" ]; then aliases="$aliases $name"; fi
        done
    done
    echo "$HOST$aliases" >"$common/host_aliases"

    up sge_qmaster sge_master_ok 60 "$spool/qmaster/messages" /usr/sbin/sge_qmaster

    conf=$(mktemp -d)
    # This host administers and submits; root may run jobs (min_uid 0; a CI runs as root);
    # the scheduler looks every second, not every 15, so tests do not wait.
    qconf -sh | grep -qx "$HOST" || qconf -ah "$HOST"
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST"
    qconf -sconf | sed -E 's/^(min_uid|min_gid) .*/\1 0/' >"$conf/global"
    qconf -Mconf "$conf/global" >/dev/null
    qconf -ssconf | sed -E 's/^schedule_interval .*/schedule_interval 0:0:1/;
        s/^flush_submit_sec .*/flush_submit_sec 1/; s/^flush_finish_sec .*/flush_finish_sec 1/' \
        >"$conf/sched"
    qconf -Msconf "$conf/sched" >/dev/null
    if ! qconf -sel 2>/dev/null | grep -qx "$HOST"; then
        printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" \
            "user_lists NONE" "xuser_lists NONE" "projects NONE" "xprojects NONE" \
            "usage_scaling NONE" "report_variables NONE" >"$conf/host"
        qconf -Ae "$conf/host"
    fi
    if ! qconf -spl 2>/dev/null | grep -qx smp; then # -pe smp N: N slots on one host
        printf '%s\n' "pe_name smp" "slots 999" "user_lists NONE" "xuser_lists NONE" \
            "start_proc_args /bin/true" "stop_proc_args /bin/true" "allocation_rule \$pe_slots" \
            "control_slaves FALSE" "job_is_first_task TRUE" "urgency_slots min" \
            "accounting_summary FALSE" "qsort_args NONE" >"$conf/pe"
        qconf -Ap "$conf/pe"
    fi
    if ! qconf -sql 2>/dev/null | grep -qx all.q; then
        # From the built-in template; no load threshold, so a busy CI machine still runs jobs.
        qconf -sq | sed -E "s/^qname .*/qname all.q/; s/^hostlist .*/hostlist $HOST/;
            s/^slots .*/slots $CPUS/; s/^pe_list .*/pe_list smp/; s/^shell .*/shell \/bin\/bash/;
            s/^load_thresholds .*/load_thresholds NONE/" >"$conf/queue"
        qconf -Aq "$conf/queue"
    fi
    rm -rf "$conf"

    up sge_execd sge_exec_ok 90 "$spool/execd/$HOST/messages" /usr/sbin/sge_execd
    say "running a test job on Grid Engine"
    timeout 120 qsub -sync y -b y -o /dev/null -e /dev/null -N memo-ci-check /bin/true >/dev/null ||
        die "a test job did not run on Grid Engine; see qstat -f and $spool/execd/$HOST/messages"
    say "Grid Engine is up: master and execution host $HOST, queue all.q with $CPUS slots"
}

# ---------------------------------------------------------------------------------------
# Slurm (22.05 from Debian), authenticated by munge

munge_ok() { munge -n | unmunge; }
slurmctld_ok() { scontrol ping; }
slurmd_ok() {
    local node state
    node=$(hostname -s)
    state=$(sinfo -h -n "$node" -o %t) || return 1
    case "$state" in
    idle | mix | alloc) return 0 ;;
    down | drain | drng) # left so by an earlier run: let it take jobs again
        scontrol update NodeName="$node" State=RESUME || true ;;
    esac
    return 1
}

start_slurm() {
    install munge slurmctld slurmd slurm-client
    ensure_ps
    local conf=/etc/slurm/slurm.conf node
    node=$(hostname -s) # slurmd names itself by the short host name
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    up munged munge_ok 30 /var/log/munge/munged.log runuser -u munge -- /usr/sbin/munged

    if [ -e "$conf" ] && ! grep -qF "$MARK" "$conf"; then
        die "$conf exists and was not written by this script; not touching it"
    fi
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    chown slurm:slurm /var/spool/slurmctld /var/log/slurm
    # Processes tracked by parent pid, no cgroups: nothing here needs systemd or cgroup v2.
    cat >"$conf.new" <<EOF
$MARK: one node, no accounting.
ClusterName=memo-ci
SlurmctldHost=$node
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=300
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$node CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    local changed=""
    if ! cmp -s "$conf.new" "$conf"; then changed=1; fi
    mv "$conf.new" "$conf"

    if [ -n "$changed" ] && slurmctld_ok >/dev/null 2>&1; then
        scontrol reconfigure || die "scontrol reconfigure failed"
    fi
    up slurmctld slurmctld_ok 60 /var/log/slurm/slurmctld.log slurmctld
    up slurmd slurmd_ok 90 /var/log/slurm/slurmd.log slurmd
    say "running a test job on Slurm"
    timeout 120 sbatch --wait --quiet -o /dev/null -J memo-ci-check --wrap true ||
        die "a test job did not run on Slurm; see squeue and /var/log/slurm/slurmd.log"
    say "Slurm is up: controller and node $node, partition debug with $CPUS CPUs"
}

# ---------------------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root: it installs packages and starts daemons"
command -v apt-get >/dev/null || die "needs apt-get (Debian or Ubuntu)"
# Both schedulers look their host up by name; some containers cannot resolve their own.
if ! getent hosts "$HOST" >/dev/null; then
    say "$HOST does not resolve; adding it to /etc/hosts as 127.0.0.1"
    echo "127.0.0.1 $HOST $(hostname -s)" >>/etc/hosts
fi
case "${1:-}" in
sge) start_sge ;;
slurm) start_slurm ;;
all)
    start_sge
    start_slurm
    ;;
*) die "usage: bash .ci/cluster.sh sge|slurm|all" ;;
esac
