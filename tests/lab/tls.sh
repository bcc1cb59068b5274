#!/usr/bin/env bash
# The lab in TLS mode (ferry-lab up --tls, a lab CA from deploy/tls/ferry-ca): every ferry
# daemon reaches RabbitMQ over AMQPS (the agents with client certificates) and PostgreSQL with
# sslmode=verify-full, libvirtd listens on TLS only, the scheduler serves its API over HTTPS,
# and ferry's migrations — pre-copy (ferryctl and the os-migrateLive API), post-copy, block —
# go over qemu+tls with QEMU's own TLS on the stream. Connections that skip TLS or do not trust
# the server are refused, with errors that say why.
source "$(dirname "$0")/lib.sh"
trap 'lab_exit $?' EXIT
"$LAB" down >/dev/null 2>&1 || true
"$LAB" up --tls --hosts 2 --schedulers 1 >/dev/null
eval "$("$LAB" env)"
[[ $FERRY_LAB_TLS == 1 && $FERRY_AMQP_URL == amqps://* && -s $FERRY_AMQP_CA_FILE ]] || fail "ferry-lab env is not in TLS mode: $FERRY_AMQP_URL"
[[ $FERRY_DB_DSN == *"sslmode=verify-full"* ]] || fail "the database DSN does not verify the server: $FERRY_DB_DSN"
logs=$FERRY_LAB_LOG_DIR
ca=$FERRY_AMQP_CA_FILE
ctl_addr=${FERRY_AMQP_URL#*@}
ctl_addr=${ctl_addr%%:*}

# ---- what is connected, and how -------------------------------------------------------------------
"$LAB" guest compute1 vm1 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'vm1'" 'compute1 running' || fail "vm1 not discovered (heartbeats over AMQPS)"
conns=$("$LAB" rabbitmqctl list_connections -q --no-table-headers user ssl ssl_protocol peer_cert_subject 2>/dev/null |
  awk -F'\t' 'NF >= 3')
n_conns=$(grep -c . <<<"$conns")
((n_conns >= 3)) || fail "expected the scheduler's and two agents' connections, the broker lists: $conns"
plain=$(awk -F'\t' '$2 != "true"' <<<"$conns")
[[ -z $plain ]] || fail "connections without TLS: $plain"
for h in compute1 compute2; do
  grep -q "CN=$h,O=ferry" <<<"$conns" || fail "the agent of $h shows no client certificate: $conns"
done
ok "broker: all $n_conns connections are TLS ($(awk -F'\t' '{print $3}' <<<"$conns" | sort -u | xargs)); the agents show their certificates"

pg=$(sql "SELECT a.application_name || ' ' || s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.backend_type = 'client backend' ORDER BY 1")
grep -q '^ferry-scheduler true$' <<<"$pg" || fail "no TLS session of the scheduler in pg_stat_ssl: $pg"
! grep -q ' false$' <<<"$pg" || fail "database sessions without TLS: $pg"
ok "database: every session is TLS ($(xargs <<<"$pg"))"

for h in compute1 compute2; do
  addr=$(host_addr "$h")
  listening=$("$LAB" shell "$h" ss -Hltn | awk '{print $4}')
  grep -qx "$addr:16514" <<<"$listening" || fail "libvirtd of $h does not listen on TLS ($addr:16514): $listening"
  ! grep -q ':16509$' <<<"$listening" || fail "libvirtd of $h still listens on plain TCP: $listening"
done
grep -q '^live_migration_uri = qemu+tls://' "$FERRY_LAB_DIR/hosts/compute1/agent.conf" || fail "the agents do not migrate over qemu+tls"
ok "libvirtd: TLS only (16514) on both hosts"

[[ $FERRY_HTTP_URL == https://* ]] || fail "the API is not on HTTPS: $FERRY_HTTP_URL"
out=$(curl -sS --cacert "$ca" "$FERRY_HTTP_URL/healthz") && [[ $(jq -r .ok <<<"$out") == true ]] || fail "healthz over HTTPS: $out"
st=0; out=$(curl -sS "$FERRY_HTTP_URL/healthz" 2>&1) || st=$?
[[ $st == 60 ]] || fail "curl trusted the API's certificate without the lab CA (exit $st): $out"
st=0; out=$(curl -sS "http://${FERRY_HTTP_URL#https://}/healthz" 2>&1) || st=$?
[[ $st != 0 ]] || fail "the HTTPS port answered plain HTTP: $out"
grep -q "HTTP API and dashboard on https://" "$logs/scheduler.log" || fail "the scheduler does not say it serves HTTPS"
ok "API: HTTPS with the lab CA; refused without it (curl exit 60) and in plain HTTP (exit $st)"

# ---- refusals: no TLS, an unknown CA, a certificate for another name, the database in clear ----------
out=$(FERRY_AMQP_URL="amqp://guest:guest@$ctl_addr:${FERRY_AMQP_URL##*:}" "$CTL" --timeout 3000 host list 2>&1) &&
  fail "plain AMQP to the broker's TLS listener worked: $out"
[[ $out == *"if this port speaks TLS, use amqps://"* ]] || fail "plain AMQP to a TLS port is not explained: $out"
ok "plain AMQP refused: $out"

other=$FERRY_LAB_DIR/other-ca
"$top/deploy/tls/ferry-ca" init "$other" >/dev/null
out=$(FERRY_AMQP_CA_FILE=$other/ca.pem "$CTL" --timeout 3000 host list 2>&1) && fail "a broker signed by another CA was trusted: $out"
[[ $out == *"TLS: the broker's certificate is refused: "*"(certificate /O=ferry/CN=ferry CA, depth 1): not issued by a CA in $other/ca.pem"* ]] ||
  fail "an untrusted broker certificate is not explained: $out"
ok "unknown CA refused: $out"

# a TLS server whose certificate (from the right CA) names another address
"$top/deploy/tls/ferry-ca" issue "$FERRY_LAB_DIR/tls" elsewhere --ip 127.0.0.9 --dns elsewhere >/dev/null
port=$((FERRY_LAB_PORT_BASE + 12))
setsid openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$FERRY_LAB_DIR/tls/elsewhere.pem" \
  -key "$FERRY_LAB_DIR/tls/elsewhere-key.pem" </dev/null >/dev/null 2>&1 &
srv=$!
trap 'st=$?; kill $srv 2>/dev/null || true; lab_exit $st' EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
out=$(FERRY_AMQP_URL="amqps://guest:guest@127.0.0.1:$port" "$CTL" --timeout 3000 host list 2>&1) &&
  fail "a certificate for another address was accepted: $out"
[[ $out == *"TLS: the broker's certificate is refused: IP address mismatch (certificate /O=ferry/CN=elsewhere, depth 0)"* ]] ||
  fail "a name mismatch is not explained: $out"
kill $srv 2>/dev/null || true
ok "certificate for another address refused: $out"

dsn_plain="host=$ctl_addr port=$((FERRY_LAB_PORT_BASE + 3)) user=postgres dbname=postgres"
out=$(psql "$dsn_plain sslmode=disable" -Atc 'SELECT 1' 2>&1) && fail "PostgreSQL accepted a connection in clear: $out"
[[ $out == *"no encryption"* ]] || fail "the clear connection was refused for another reason: $out"
out=$(psql "$dsn_plain sslmode=verify-full sslrootcert=$other/ca.pem" -Atc 'SELECT 1' 2>&1) &&
  fail "verify-full trusted a server of another CA: $out"
ok "database in clear or under another CA refused"

# ---- migrations over TLS ------------------------------------------------------------------------
ec2=$(sql "SELECT ec2_id FROM instances WHERE name = 'vm1'")
before=$(last_hb vm1)
"$CTL" migrate "$ec2" compute2 --wait >"$FERRY_LAB_DIR/m1.out" 2>&1 || fail "pre-copy over TLS: $(cat "$FERRY_LAB_DIR/m1.out")"
[[ $(where vm1) == "compute2 running yes" ]] || fail "vm1 is at: $(where vm1)"
for _ in $(seq 1 30); do (($(last_hb vm1) > before)) && break; sleep 0.2; done
(($(last_hb vm1) > before)) || fail "vm1 heartbeat did not go on"
m1=$(sql "SELECT id FROM migrations WHERE status = 'completed' ORDER BY id DESC LIMIT 1")
grep -q "migration=$m1 .*started: uri qemu+tls://$(host_addr compute2)/system.*stream over TLS" "$logs/compute1.agent.log" ||
  fail "the source's start line does not show qemu+tls and the TLS stream: $(grep "migration=$m1 " "$logs/compute1.agent.log" | head -n 3)"
ok "pre-copy over TLS: migration $m1 of $ec2 to compute2, heartbeat went on"

# and back through the API over HTTPS: the ORBIT os-migrateLive body
code=$(curl -sS --cacert "$ca" -o "$FERRY_LAB_DIR/api.body" -w '%{http_code}' -X POST -H "X-Auth-Token: $FERRY_API_TOKEN" \
  "$FERRY_HTTP_URL/v2/admin/servers/$ec2/action" \
  -d '{"os-migrateLive":{"host":"compute1","block_migration":false,"disk_over_commit":false,"post_copy":false}}')
[[ $code == 202 ]] || fail "os-migrateLive over HTTPS: $code $(cat "$FERRY_LAB_DIR/api.body")"
m2=$(jq -r .migration "$FERRY_LAB_DIR/api.body")
wait_sql 60 "SELECT status FROM migrations WHERE id = $m2" completed || fail "the HTTPS migration: $(sql "SELECT status, error FROM migrations WHERE id = $m2")"
[[ $(where vm1) == "compute1 running yes" ]] || fail "vm1 is at: $(where vm1)"
ok "os-migrateLive over HTTPS: 202, migration $m2 took $ec2 back to compute1"

# post-copy of a dirtying guest, bandwidth-limited so the job runs long enough to look inside:
# QEMU's migration parameters name libvirt's TLS credentials while it runs
"$LAB" guest compute1 d1 --dirty 64 --rate 48 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'd1'" 'compute1 running' || fail "d1 not discovered running"
"$CTL" migrate d1 compute2 --postcopy --bandwidth 32 --wait >"$FERRY_LAB_DIR/m2.out" 2>&1 &
mpid=$!
creds=
for _ in $(seq 1 100); do
  creds=$("$LAB" virsh compute1 qemu-monitor-command d1 '{"execute":"query-migrate-parameters"}' 2>/dev/null |
    jq -r '.return["tls-creds"] // empty' 2>/dev/null || true)
  [[ -n $creds ]] && break
  sleep 0.1
done
wait $mpid || fail "post-copy over TLS: $(cat "$FERRY_LAB_DIR/m2.out")"
[[ -n $creds ]] || fail "QEMU's migration never had TLS credentials set"
grep -q "switched to post-copy" "$FERRY_LAB_DIR/m2.out" || fail "d1 did not switch to post-copy: $(cat "$FERRY_LAB_DIR/m2.out")"
[[ $(where d1) == "compute2 running yes" ]] || fail "d1 is at: $(where d1)"
ok "post-copy over TLS: d1 on compute2, QEMU's stream used TLS credentials '$creds'"

"$LAB" guest compute1 b1 --local-disk 64 >/dev/null
"$LAB" disk compute2 b1 64 >/dev/null
wait_sql 30 "SELECT host || ' ' || vm_state FROM instances WHERE name = 'b1'" 'compute1 running' || fail "b1 not discovered running"
"$CTL" migrate b1 compute2 --block-migrate --wait >"$FERRY_LAB_DIR/m3.out" 2>&1 || fail "block migration over TLS: $(cat "$FERRY_LAB_DIR/m3.out")"
[[ $(where b1) == "compute2 running yes" ]] || fail "b1 is at: $(where b1)"
check_usage
ok "block migration over TLS (disk copied through QEMU's TLS NBD): b1 on compute2"

trap - EXIT
"$LAB" down >/dev/null
sleep 0.5
left=$(leftovers)
[[ -z $left ]] || fail "down left behind: $left"
ok "down left nothing behind, the lab CA included"
