# Shared by the docker/build-*-image.sh scripts, which source it after defining log() and
# setting `set -euo pipefail`. It defines functions only.
#
# Environment: KASTOR_CACHE (default ~/.cache/kastor) for the rootfs tarballs, DEBIAN_MIRROR.

# label_of IMAGE prints the dev.kastor.inputs label of IMAGE, nothing when the image is missing.
label_of() {
  docker image inspect --format '{{ index .Config.Labels "dev.kastor.inputs" }}' "$1" 2>/dev/null || true
}

# debian_base REPO PACKAGES names the base image of a Debian bookworm rootfs with PACKAGES
# (comma-separated, as debootstrap's --include): it sets base_packages, base_recipe, base_tag
# and base_image=REPO:<hash of the recipe>. The recipe, hence the tag, changes only when the
# packages do.
debian_base() {
  base_packages=$2
  base_recipe="debootstrap --variant=minbase --include=$base_packages bookworm"
  base_tag=$(printf '%s' "$base_recipe" | sha256sum | cut -c1-12)
  base_image=$1:$base_tag
}

# ensure_debian_base makes sure the image named by debian_base exists: it imports it from the
# cached rootfs tarball, which it first builds with debootstrap (as root) when missing.
ensure_debian_base() {
  docker image inspect "$base_image" >/dev/null 2>&1 && return 0
  local cache=${KASTOR_CACHE:-$HOME/.cache/kastor}
  local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  local tarball=$cache/rootfs-$base_tag.tar
  if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || {
      if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing debootstrap"
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get update -qq >/dev/null && apt-get install -y -qq debootstrap >/dev/null
      else
        log "debootstrap is missing: install it (apt-get install debootstrap) and run again"; exit 1
      fi
    }
    [[ $(id -u) == 0 ]] || { log "debootstrap needs root to build the base rootfs"; exit 1; }
    mkdir -p "$cache"
    # Global, not local: the EXIT trap may run after this function has returned or exited.
    kastor_rootfs=$(mktemp -d)
    trap 'rm -rf "$kastor_rootfs"' EXIT
    log "debootstrap: $base_recipe (about a minute)"
    debootstrap --variant=minbase --include="$base_packages" bookworm "$kastor_rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { log "debootstrap failed, see $cache/debootstrap.log"; tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$kastor_rootfs"/var/cache/apt/archives/*.deb "$kastor_rootfs"/var/lib/apt/lists/* "$kastor_rootfs"/usr/share/doc/* "$kastor_rootfs"/usr/share/man/*
    tar -C "$kastor_rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$kastor_rootfs"
    trap - EXIT
  fi
  log "importing base image $base_image"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" >/dev/null
}

# classic_build ARGS... runs `docker build -q ARGS...` with the classic builder: it uses the
# imported base image as it is, where BuildKit on older engines may try to resolve FROM
# against a registry. Its deprecation notice is dropped; other output goes to stderr.
classic_build() {
  DOCKER_BUILDKIT=0 docker build -q "$@" 2>&1 >/dev/null \
    | { grep -vE 'DEPRECATED|BuildKit|environment-variable|^\s*$' || true; } >&2
}
