#!/usr/bin/env bash
# Makes sure the services the tests talk to are installed, running and
# reachable: PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth for local
# connections), Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672
# (guest/guest, which RabbitMQ allows from this host only). Installs them from
# Debian packages when missing. Idempotent; quiet when everything is up.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

pg_ok() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing PostgreSQL…"
  apt_install postgresql postgresql-client
fi
if ! pg_ok; then
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -q && break; sleep 0.5; done
  if ! pg_ok; then
    # Reachable but refusing us: trust local TCP and socket connections (test machines only).
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    echo "configuring trust authentication for local connections in $hba"
    $SUDO sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)\s(peer|md5|scram-sha-256)\s*$/\1\2 trust/' "$hba"
    $SUDO sed -i -E 's/^(local\s+all\s+postgres\s+)(peer|md5|scram-sha-256)\s*$/\1trust/' "$hba"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
  fi
  pg_ok || { echo "PostgreSQL is not reachable as postgres@127.0.0.1:5432" >&2; exit 1; }
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing Redis…"
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.25; done
fi

amqp_ok() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "installing RabbitMQ…"
  apt_install rabbitmq-server
fi
if ! amqp_ok; then
  # Without systemd the init script starts it; a node that is up with its
  # application stopped (`rabbitmqctl stop_app`) only needs the application.
  $SUDO rabbitmqctl start_app >/dev/null 2>&1 \
    || $SUDO service rabbitmq-server start >/dev/null 2>&1 \
    || $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do amqp_ok && break; sleep 1; done
  amqp_ok || { echo "RabbitMQ is not reachable on 127.0.0.1:5672" >&2; exit 1; }
fi
