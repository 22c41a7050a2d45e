#!/usr/bin/env bash
# Builds the local PostgreSQL image without pulling any image:
#   1. a Debian bookworm rootfs with Debian's PostgreSQL 15 (debootstrap), imported as a base
#      image (docker/lib.sh, shared with build-kafka-image.sh);
#   2. docker build of docker/postgres/Dockerfile on top of the base; its entrypoint
#      (docker/postgres/run) follows the official postgres image's environment contract.
# The image carries a label with the hash of its inputs; an image whose inputs did not change
# is reused, so running this again costs a second. --force rebuilds the PostgreSQL image.
#
# Environment: KASTOR_POSTGRES_IMAGE (default kastor/postgres:15), KASTOR_CACHE (default
# ~/.cache/kastor) for the rootfs tarball, DEBIAN_MIRROR.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/postgres
force=0
[[ ${1-} == --force ]] && force=1

pg_major=15 # bookworm's PostgreSQL
image=${KASTOR_POSTGRES_IMAGE:-kastor/postgres:$pg_major}

log() { printf '[postgres-image] %s\n' "$*" >&2; }
# shellcheck source=lib.sh
source "$here/lib.sh"
debian_base "kastor/debian-postgresql$pg_major" "postgresql-$pg_major"

inputs=$( (cd "$src" && cat Dockerfile run; echo "$base_image") | sha256sum | cut -c1-16)
if [[ $force == 0 && "$(label_of "$image")" == "$inputs" ]]; then
  log "$image is up to date (inputs $inputs)"
  exit 0
fi

start=$(date +%s)
ensure_debian_base

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$src"/Dockerfile "$src"/run "$ctx"/
log "building $image"
classic_build --build-arg "BASE_IMAGE=$base_image" --build-arg "PG_MAJOR=$pg_major" \
  --label "dev.kastor.inputs=$inputs" --label "org.postgresql.version=$pg_major" \
  -t "$image" "$ctx"
log "built $image in $(( $(date +%s) - start ))s"
