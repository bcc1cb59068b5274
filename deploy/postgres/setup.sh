#!/usr/bin/env bash
# deploy/postgres/setup.sh [--db NAME] [--role NAME] [--password PW] [PSQL CONNECTION ARGS...]
# Creates ferry's database and the scheduler's role with least privilege: the role may connect
# to that database, owns one schema (`ferry`, its search_path) and nothing else — no
# superuser, no CREATEDB/CREATEROLE, no CREATE on `public`. Run it as a PostgreSQL superuser
# (e.g. `sudo -u postgres deploy/postgres/setup.sh --password ...`); it is idempotent. Then:
#   dsn = host=db.example port=5432 dbname=ferry user=ferry_scheduler password=... sslmode=verify-full
#   ferry-scheduler --db-upgrade
set -euo pipefail
db=ferry role=ferry_scheduler password=
while (($#)); do
  case $1 in
    --db) db=$2; shift 2 ;;
    --role) role=$2; shift 2 ;;
    --password) password=$2; shift 2 ;;
    --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
[[ $db =~ ^[a-z_][a-z0-9_]*$ && $role =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "setup.sh: --db and --role: lower-case identifiers" >&2; exit 2; }
psql=(psql -v ON_ERROR_STOP=1 -qAtX "$@")
"${psql[@]}" -d postgres -v role="$role" -v pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', :'role')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw') WHERE :'pw' <> '' \gexec
SQL
"${psql[@]}" -d postgres -v db="$db" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
"${psql[@]}" -d "$db" -v db="$db" -v role="$role" <<'SQL'
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('CREATE SCHEMA IF NOT EXISTS ferry AUTHORIZATION %I', :'role') \gexec
SELECT format('ALTER ROLE %I IN DATABASE %I SET search_path = ferry', :'role', :'db') \gexec
SQL
echo "database $db: role $role owns schema ferry (its search_path) and nothing else"
