#!/usr/bin/env bash
# The day-2 sequence of the day2 scenario, run by side_effect.yml with traffic running.
# Every step is what a user runs: an ansible-playbook command or a fault on a lab host.
# Environment: INV (Molecule's inventory), WORK (ephemeral dir), REPO, BIN (venv bin),
# SEQUENCE (ci | reduced | full), BOOTSTRAP (brokers 1-3). ci (make test-day2-ci) runs the faults only,
# on the converged 4.3.1 cluster: the kill of a partition leader and the full data disk.
# Writes $WORK/steps.log (one line per step: name, seconds, result) and each run's log.
set -euo pipefail
cd "$REPO"
# one line per result: the greps below look for refusal messages
export ANSIBLE_CALLBACK_RESULT_FORMAT=json
SCALE="$REPO/molecule/day2/scaleout.ini"
NEW=(-e kafka_version=4.4.0 -e "kafka_archive_local_path=$REPO/.cache/dist/kafka_2.13-4.4.0.tgz")
OLD=(-e kafka_version=4.3.1 -e "kafka_archive_local_path=$REPO/.cache/dist/kafka_2.13-4.3.1.tgz")
LOADGEN=("$BIN/python" "$REPO/molecule/day2/loadgen.py")
BROKERS=(kk-day2-b1 kk-day2-b2 kk-day2-b3)
CONTROLLERS=(kk-day2-c1 kk-day2-c2 kk-day2-c3)
: > "$WORK/steps.log"

step() {  # step NAME EXPECT(ok|fail) CMD...: run, time, log; stop the sequence when not as expected
  local name=$1 expect=$2; shift 2
  local t0=$SECONDS rc=0
  echo "$(date +%T) $name"
  "$@" > "$WORK/$name.log" 2>&1 || rc=$?
  local took=$((SECONDS - t0))
  echo "$name ${took}s rc=$rc" >> "$WORK/steps.log"
  if [[ $expect == ok && $rc -ne 0 ]] || [[ $expect == fail && $rc -eq 0 ]]; then
    echo "step $name: rc=$rc, expected $expect"; tail -n 60 "$WORK/$name.log"; exit 1
  fi
}
play() { "$BIN/ansible-playbook" -i "$INV" "$@"; }
play4() { "$BIN/ansible-playbook" -i "$INV" -i "$SCALE" "$@"; }
pids() { for h in "${CONTROLLERS[@]}" "${BROKERS[@]}"; do echo "$h $(podman exec "$h" systemctl show -p MainPID --value kafka)"; done; }
isr() { "${LOADGEN[@]}" wait-isr --bootstrap "$BOOTSTRAP" --timeout "${1:-300}"; }
throttles() {  # broker-level throttles set on any broker (dynamic configs)
  podman exec kk-day2-b1 java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.ConfigCommand \
    --bootstrap-server 10.89.64.21:9092 --describe --entity-type brokers | grep -c 'replication.throttled.rate=' || true
}
host_of() {  # node id -> container
  case $1 in 10[1-5]) echo "kk-day2-c${1#10}";; *) echo "kk-day2-b$1";; esac
}
kill9() {  # kill -9 the service's main process, then wait until systemd (Restart=on-failure,
  # RestartSec=10) has started a new one and the ISR had time to notice (replica.lag.time.max.ms 30 s)
  local before; before=$(podman exec "$1" systemctl show -p MainPID --value kafka)
  podman exec "$1" kill -9 "$before"
  for _ in $(seq 60); do
    sleep 2
    local now; now=$(podman exec "$1" systemctl show -p MainPID --value kafka)
    [[ $now != "$before" && $now != 0 ]] && break
  done
  echo "  $1: main PID $before killed, now $(podman exec "$1" systemctl show -p MainPID --value kafka)" >> "$WORK/steps.log"
  sleep 20
}
feedkill() {  # kill -9 the training feed (loadgen.py feed starts it again from its saved state)
  local pid; pid=$(cat "$WORK/feed.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; then
    echo "  feed killed ($1) after batch $(wc -l < "$WORK/feed.log")" >> "$WORK/steps.log"
  fi
}
quorum_leader() {
  podman exec kk-day2-c1 java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-controller 10.89.64.11:9093 describe --status | sed -n 's/^LeaderId:[[:space:]]*//p'
}

# The faults' playbook runs: the inventories and versions of the point the sequence reached
FAULT_PLAY=(play4) FAULT_VARS=()
if [[ $SEQUENCE == ci ]]; then
  FAULT_PLAY=(play)
  sleep 30  # traffic before the first fault
  feedkill "at the start of the ci sequence"
  sleep 30  # the feed restarted and saved its state (a kill within seconds found no new pid)
else
# --- upgrade 4.3.1 -> 4.4.0 ---------------------------------------------------------------
step upgrade-check ok play playbooks/upgrade.yml "${NEW[@]}" --check
(sleep 90; feedkill "during the upgrade's roll") &
step upgrade ok play playbooks/upgrade.yml "${NEW[@]}"
if [[ $SEQUENCE == full ]]; then
  # before the finalize the way back is the same playbook with the old version, then forward again
  step rollback ok play playbooks/upgrade.yml "${OLD[@]}"
  step upgrade-again ok play playbooks/upgrade.yml "${NEW[@]}"
fi
step finalize ok play playbooks/upgrade.yml "${NEW[@]}" -e kafka_upgrade_finalize=true
step rollback-after-finalize fail play playbooks/upgrade.yml "${OLD[@]}"
grep -q "metadata.version 4.4-IV.* is finalized" "$WORK/rollback-after-finalize.log"

# --- static -> dynamic KRaft quorum (kraft.version 1, then bootstrap.servers rolled in) -------
voters_dirs() {  # the voters' directory ids, as Kafka reports them
  podman exec kk-day2-c1 java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-controller 10.89.64.11:9093 describe --replication | awk '$NF ~ /Leader|Follower/ {print $1, $2}'
}
voters_dirs > "$WORK/voters.static"
# the inventory says static (molecule.yml); the move and every step after it say dynamic, as a
# user's group_vars would after the move (a converge with static is refused once it runs dynamic)
NEW+=(-e kafka_kraft_quorum=dynamic)
if [[ $SEQUENCE == full ]]; then
  step quorum-move-check ok play playbooks/kraft_dynamic_quorum.yml "${NEW[@]}" --check
fi
(sleep 45; feedkill "during the quorum move") &
step quorum-move ok play playbooks/kraft_dynamic_quorum.yml "${NEW[@]}"
voters_dirs > "$WORK/voters.dynamic"
pids > "$WORK/pids.moved"
step quorum-move-again ok play playbooks/kraft_dynamic_quorum.yml "${NEW[@]}"
pids > "$WORK/pids.moved-again"
diff "$WORK/pids.moved" "$WORK/pids.moved-again"  # the rerun restarted nobody

# --- controllers 3 -> 5 -> 3 in the dynamic quorum (playbooks/kraft_controllers.yml) -----------
# The spare hosts kk-day2-c4 and kk-day2-c5 listed as controllers 104 and 105 (controllers.ini, an
# inventory added with -i, as a user lists new controllers): the playbook starts them as observers,
# rolls the others (their controller.quorum.bootstrap.servers now lists the new ones) and adds them
# one at a time. Then a removal that would leave 2 voters is refused, the two are removed and
# stopped, and the converge of the inventory without them drops them from every bootstrap list.
CTRL="$REPO/molecule/day2/controllers.ini"
play5() { "$BIN/ansible-playbook" -i "$INV" -i "$CTRL" "$@"; }
(sleep 90; feedkill "during the controllers' add") &
step controllers-add ok play5 playbooks/kraft_controllers.yml "${NEW[@]}"
voters_dirs | sort > "$WORK/voters.five"
[[ $(awk '{print $1}' "$WORK/voters.five" | tr '\n' ' ') == "101 102 103 104 105 " ]]
step controllers-remove-refused fail play5 playbooks/kraft_controllers.yml "${NEW[@]}" \
  -e '{"kafka_kraft_controllers_remove": ["kk-day2-c1", "kk-day2-c2", "kk-day2-c4"]}'
grep -q "would have 2 voter(s) (103, 105)" "$WORK/controllers-remove-refused.log"
step controllers-remove ok play5 playbooks/kraft_controllers.yml "${NEW[@]}" \
  -e '{"kafka_kraft_controllers_remove": ["kk-day2-c4", "kk-day2-c5"]}'
voters_dirs | sort > "$WORK/voters.three"
diff <(sort "$WORK/voters.dynamic") "$WORK/voters.three"  # the first three, with their directory ids
! podman exec kk-day2-c4 systemctl is-active kafka
! podman exec kk-day2-c5 systemctl is-active kafka
# the rerun: nothing to remove, and its converge leaves the removed controllers stopped
step controllers-remove-again ok play5 playbooks/kraft_controllers.yml "${NEW[@]}" \
  -e '{"kafka_kraft_controllers_remove": ["kk-day2-c4", "kk-day2-c5"]}'
grep -q "already removed: kk-day2-c4, kk-day2-c5" "$WORK/controllers-remove-again.log"
! podman exec kk-day2-c4 systemctl is-active kafka
! podman exec kk-day2-c5 systemctl is-active kafka
step converge-after-controllers ok play playbooks/kafka.yml "${NEW[@]}"

# --- scale-out: broker 4 joins, nobody else restarts, replicas move onto it -----------------
# Data for the rebalance to move: 12 MiB in 12 partitions on brokers 1-3. The kit's plan walks
# partitions by name and the traffic topic holds little, so without it the moves were all of
# near-empty __consumer_offsets partitions, done within the "interrupted" run's 1 s wait; the
# name sorts before __consumer_offsets (upper case) so its partitions are moved first.
bulk_data() {
  local tool=(podman exec kk-day2-b1 java -cp '/opt/kafka/current/libs/*')
  "${tool[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server 10.89.64.21:9092 --create \
    --if-not-exists --topic Day2-bulk --partitions 12 --replication-factor 3
  "${tool[@]}" org.apache.kafka.tools.ProducerPerformance --topic Day2-bulk --num-records 12288 \
    --record-size 1024 --throughput -1 --producer-props bootstrap.servers=10.89.64.21:9092 acks=all
}
step bulk-data ok bulk_data
pids > "$WORK/pids.before"
step scale-out ok play4 playbooks/kafka.yml "${NEW[@]}"
pids > "$WORK/pids.after"
diff "$WORK/pids.before" "$WORK/pids.after"
podman exec kk-day2-b4 systemctl is-active kafka
step rebalance-plan ok play4 playbooks/rebalance.yml "${NEW[@]}" --check
grep -q "Plan: [1-9][0-9]* of" "$WORK/rebalance-plan.log"
# interrupted: a throttle slow enough for the move to outlast a 1 s wait and the slow checks of a
# loaded machine (200,000 B/s finished within the run once, 2026-12-07, 52 s under load)
step rebalance-interrupted fail play4 playbooks/rebalance.yml "${NEW[@]}" -e kafka_reassign_throttle=50000 -e kafka_reassign_timeout=1
echo "throttles after the interrupted run: $(throttles)" >> "$WORK/steps.log"
[[ $(throttles) -gt 0 ]]
step rebalance-resumed ok play4 playbooks/rebalance.yml "${NEW[@]}"
echo "throttles after the resumed run: $(throttles)" >> "$WORK/steps.log"
[[ $(throttles) -eq 0 ]]
step rebalance-again ok play4 playbooks/rebalance.yml "${NEW[@]}"
grep -q "Plan: 0 of" "$WORK/rebalance-again.log"

FAULT_VARS=("${NEW[@]}")
fi  # SEQUENCE != ci

# --- faults ---------------------------------------------------------------------------------
leader=$("${LOADGEN[@]}" leader --bootstrap "$BOOTSTRAP")
echo "fault: kill -9 of partition 0's leader, node $leader" >> "$WORK/steps.log"
feedkill "with the leader kill"
kill9 "$(host_of "$leader")"
step isr-after-leader-kill ok isr 300

# --- a full data disk: broker 3's second log dir is a 1 GiB tmpfs (molecule.yml) --------------
# Filled, Kafka takes that log dir offline (the broker keeps running on its first dir), its
# replicas there leave the ISR and their leaders move. The gate refuses to restart another
# broker meanwhile. The documented action (docs/day2.md): free the space, then restart broker 3
# through the gate (rolling_restart.yml --limit), which brings the dir and its replicas back.
SMALL=/var/lib/kafka/small
small_dir_error() {  # what Kafka reports for broker 3's small log dir: None while it is online
  podman exec kk-day2-b1 java -cp '/opt/kafka/current/libs/*' org.apache.kafka.tools.LogDirsCommand \
    --bootstrap-server 10.89.64.21:9092 --describe --broker-list 3 | tail -n 1 | "$BIN/python" -c "
import json, sys
dirs = json.load(sys.stdin)['brokers'][0]['logDirs']
print([d['error'] for d in dirs if d['logDir'] == '$SMALL/data'][0])"
}
disk_fill() {  # fill the disk, then wait (up to 5 min) for Kafka to report the dir offline
  local parts; parts=$(podman exec kk-day2-b3 ls "$SMALL/data" | grep -c -- '-[0-9][0-9]*$' || true)
  local used; used=$(podman exec kk-day2-b3 df -k --output=used "$SMALL" | tail -n 1)
  echo "fault: kk-day2-b3's $SMALL full, $parts partition(s) in its log dir, ${used// /} KiB used before" >> "$WORK/steps.log"
  [[ $parts -gt 0 ]]
  [[ $(small_dir_error) == None ]]  # online until now (the traffic alone must not fill it)
  podman exec kk-day2-b3 sh -c "dd if=/dev/zero of=$SMALL/filler bs=1M 2>/dev/null; df -k $SMALL | tail -n 1"
  for _ in $(seq 60); do
    local err; err=$(small_dir_error)
    if [[ $err != None ]]; then echo "  log dir $SMALL/data: $err" >> "$WORK/steps.log"; return 0; fi
    sleep 5
  done
  return 1
}
step disk-full ok disk_fill
feedkill "with broker 3's disk full"
sleep 30  # traffic runs on with the dir offline
step disk-full-other-refused fail "${FAULT_PLAY[@]}" playbooks/rolling_restart.yml "${FAULT_VARS[@]}" --limit kk-day2-b1
grep -q "Not restarting kk-day2-b1 (node 1): under-replicated partitions" "$WORK/disk-full-other-refused.log"
podman exec kk-day2-b3 rm -f "$SMALL/filler"
sleep 10
[[ $(small_dir_error) != None ]]  # space alone does not bring the dir back: the restart does
step disk-full-restart ok "${FAULT_PLAY[@]}" playbooks/rolling_restart.yml "${FAULT_VARS[@]}" --limit kk-day2-b3
[[ $(small_dir_error) == None ]]
step isr-after-disk-full ok isr 300

if [[ $SEQUENCE == full ]]; then
  active=$(quorum_leader)
  echo "fault: kill -9 of the active controller, node $active" >> "$WORK/steps.log"
  feedkill "with the controller kill"
  kill9 "$(host_of "$active")"
  step isr-after-controller-kill ok isr 300

  echo "fault: kk-day2-b2 off the network for 60 s" >> "$WORK/steps.log"
  podman network disconnect kk-day2 kk-day2-b2
  sleep 20
  feedkill "while broker 2 is off the network"
  sleep 40
  podman network connect --ip 10.89.64.22 kk-day2 kk-day2-b2
  sleep 10
  step isr-after-partition ok isr 300

  echo "fault: full-cluster restart (every host at once)" >> "$WORK/steps.log"
  for h in "${CONTROLLERS[@]}" "${BROKERS[@]}" kk-day2-b4; do podman exec "$h" systemctl restart kafka & done
  sleep 5
  feedkill "during the full-cluster restart"
  wait
  step isr-after-full-restart ok isr 300

  # --- drain broker 4 and take it out ------------------------------------------------------
  step drain-refused fail play4 playbooks/drain.yml "${NEW[@]}" -e '{"kafka_reassign_drain": [2]}'
  grep -q "would span 2 racks instead of 3" "$WORK/drain-refused.log"
  step drain ok play4 playbooks/drain.yml "${NEW[@]}" -e '{"kafka_reassign_drain": [4]}'
  step drain-again ok play4 playbooks/drain.yml "${NEW[@]}" -e '{"kafka_reassign_drain": [4]}'
  ! podman exec kk-day2-b4 systemctl is-active kafka
  # the inventory without broker 4: a converge changes nothing on the others
  step converge-after-drain ok play playbooks/kafka.yml "${NEW[@]}"
fi
echo "$(date +%T) done"
