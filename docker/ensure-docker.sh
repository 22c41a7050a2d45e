#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where none does and this runs as root on a Debian-like
# system, it installs Debian's docker.io when dockerd is missing and starts dockerd in the
# background (log: /var/log/kastor-dockerd.log). Otherwise it says what to do and fails.
set -euo pipefail
log() { printf '[docker] %s\n' "$*" >&2; }

docker info >/dev/null 2>&1 && exit 0

if [[ $(id -u) != 0 ]]; then
  log "no Docker engine answers and this is not root: start Docker (or set KAFKA_BROKERS) and run again"
  exit 1
fi
if ! command -v dockerd >/dev/null; then
  command -v apt-get >/dev/null || { log "dockerd is missing and apt-get is not available: install Docker"; exit 1; }
  log "installing docker.io (Debian package)"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi
if ! pgrep -x dockerd >/dev/null; then
  log "starting dockerd"
  nohup dockerd >/var/log/kastor-dockerd.log 2>&1 &
fi
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && { log "engine ready"; exit 0; }
  sleep 0.5
done
log "dockerd did not answer within 60s; last lines of /var/log/kastor-dockerd.log:"
tail -20 /var/log/kastor-dockerd.log >&2 || true
exit 1
