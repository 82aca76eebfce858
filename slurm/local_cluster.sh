#!/usr/bin/env bash
# A real single-node Slurm (with accounting) on this machine, for the tests of the Slurm path.
#
#   slurm/local_cluster.sh install   # Debian packages (root): slurmctld slurmd slurm-client munge slurmdbd mariadb-server
#   slurm/local_cluster.sh up        # start munged, MariaDB, slurmdbd, slurmctld, slurmd; wait until a job runs
#   slurm/local_cluster.sh env       # print `export SLURM_CONF=...` for clients (eval "$(... env)")
#   slurm/local_cluster.sh status    # sinfo, or non-zero when the cluster is not up
#   slurm/local_cluster.sh down      # stop every daemon it started (by pid file, checking the name)
#
# Everything lives under $CODISTILL_SLURM_DIR (default /tmp/codistill-slurm): configs, keys,
# sockets, database, logs. One node named localhost with this machine's CPUs, one partition
# `local`. Accounting matters: without it sacct fails, submitit sees job states as UNKNOWN and a
# cancelled job is never noticed.
set -euo pipefail

DIR=${CODISTILL_SLURM_DIR:-/tmp/codistill-slurm}
PARTITION=local
DB_PORT=${CODISTILL_SLURM_DB_PORT:-3307}
MUNGE_SOCKET=$DIR/munge/run/munge.socket
PACKAGES="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"

log() { echo "local_cluster: $*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "must run as root (it installs packages and runs the Slurm daemons as root)"; exit 2
  fi
}

install() {
  need_root
  if command -v slurmctld >/dev/null && command -v slurmdbd >/dev/null && command -v munged >/dev/null \
      && command -v mariadbd >/dev/null && command -v sbatch >/dev/null; then
    log "packages already installed"; return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The daemons' own start scripts cannot run without systemd; `up` starts them itself.
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
  log "installed: $PACKAGES"
}

# pid of a daemon from its pid file when that process is alive (zombies count as dead) and is
# the program named.
live_pid() {
  local pidfile=$1 name=$2 pid state
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat")
  [ "$state" != Z ] || return 1
  grep -q "$name" "/proc/$pid/comm" || return 1
  echo "$pid"
}

wait_for() {  # wait_for <seconds> <description> <command...>
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out after ${seconds}s waiting for $what (logs in $DIR/log)"; return 1
}

write_configs() {
  local cpus memory
  cpus=$(nproc)
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$DIR"/{munge/run,log,state,spool,mysql,run}
  chmod 711 "$DIR/munge/run"
  if [ ! -f "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
  fi
  cat > "$DIR/slurm.conf" <<EOF
ClusterName=codistill
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# submitit ignores SIGTERM; the default 30 s would hold the node after every cancel.
KillWait=2
SchedulerParameters=batch_sched_delay=0
SchedulerType=sched/backfill
JobRequeue=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# slurmctld's connection to slurmdbd ignores AuthInfo and reads the munge socket from here.
AccountingStoragePass=$MUNGE_SOCKET
JobAcctGatherType=jobacct_gather/none
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  cat > "$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=codistill
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

start_munge() {
  live_pid "$DIR/run/munged.pid" munged >/dev/null && return
  munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munge.seed"
  wait_for 10 munged test -S "$MUNGE_SOCKET"
}

start_mariadb() {
  live_pid "$DIR/run/mariadb.pid" mariadbd >/dev/null && return
  if [ ! -d "$DIR/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=normal \
      >"$DIR/log/mariadb-install.log" 2>&1
  fi
  (mariadbd --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock" --bind-address=127.0.0.1 \
    --port="$DB_PORT" --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
    --skip-grant-tables=0 >/dev/null 2>&1 &)
  wait_for 30 MariaDB mariadb --socket="$DIR/run/mysql.sock" -uroot -e "select 1"
  mariadb --socket="$DIR/run/mysql.sock" -uroot <<'EOF'
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'codistill';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'codistill';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurm() {
  export SLURM_CONF=$DIR/slurm.conf
  if ! live_pid "$DIR/run/slurmdbd.pid" slurmdbd >/dev/null; then
    slurmdbd   # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 30 slurmdbd sacctmgr -n list cluster
  fi
  sacctmgr -i add cluster codistill >/dev/null 2>&1 || true
  if ! live_pid "$DIR/run/slurmctld.pid" slurmctld >/dev/null; then
    slurmctld -f "$DIR/slurm.conf"
    wait_for 30 slurmctld scontrol ping
  fi
  if ! live_pid "$DIR/run/slurmd.pid" slurmd >/dev/null; then
    slurmd -N localhost -f "$DIR/slurm.conf"
  fi
  # sinfo may show the node idle from saved state before slurmd re-registers: run a real job.
  wait_for 60 "a first job" srun -Q -p "$PARTITION" -t 1 true
}

up() {
  need_root
  install
  write_configs
  start_munge
  start_mariadb
  start_slurm
  log "up: partition '$PARTITION' on localhost ($(nproc) CPUs); clients need SLURM_CONF=$DIR/slurm.conf"
}

down() {
  local name pid
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
    local file=$name
    [ "$name" = mariadbd ] && file=mariadb
    if pid=$(live_pid "$DIR/run/$file.pid" "$name"); then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do live_pid "$DIR/run/$file.pid" "$name" >/dev/null || break; sleep 0.1; done
      if live_pid "$DIR/run/$file.pid" "$name" >/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
  done
  log "down"
}

status() {
  SLURM_CONF=$DIR/slurm.conf sinfo -h -o "%P %a %D %t"
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  status) status ;;
  env) echo "export SLURM_CONF=$DIR/slurm.conf CODISTILL_SLURM_PARTITION=$PARTITION" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
