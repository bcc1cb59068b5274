#!/usr/bin/env bash
# deploy/rabbitmq/setup.sh SCHEDULER_PASSWORD: ferry's topology on the broker (definitions.json:
# the exchanges ferry, ferry.events, ferry.dead and the quorum queues ferry.scheduler, with
# dead-lettering, and ferry.dead; the policy ferry-scheduler-delivery-limit: a request delivered
# more than 50 times goes to ferry.dead; the policy ferry-dead-bound: ferry.dead keeps the newest
# 100000 messages / 512 MiB, dropping the oldest) and the schedulers' user `ferry-scheduler`, which may
# configure, write and read ferry's resources. Agents get a user each: add-agent-user.
# RABBITMQCTL names the command (default rabbitmqctl). Idempotent.
set -euo pipefail
(($# == 1)) || { echo "usage: $0 SCHEDULER_PASSWORD" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
read -r -a ctl <<<"${RABBITMQCTL:-rabbitmqctl}"
"${ctl[@]}" import_definitions "$here/definitions.json" >/dev/null
"${ctl[@]}" list_users -q | awk '{print $1}' | grep -qx ferry-scheduler || "${ctl[@]}" add_user ferry-scheduler "$1" >/dev/null
"${ctl[@]}" change_password ferry-scheduler "$1" >/dev/null
"${ctl[@]}" set_permissions -p / ferry-scheduler '^(ferry|ferry\..*|amq\.gen-.*)$' '^(ferry|ferry\..*|amq\.default|amq\.gen-.*)$' \
  '^(ferry|ferry\..*|amq\.gen-.*)$' >/dev/null
echo "rabbitmq: ferry's topology is defined; user ferry-scheduler may use ferry's exchanges and queues"
