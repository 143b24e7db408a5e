# Sourced by tests/run.sh and examples/demo.sh (bash).
# install_packages PKG...: on Debian as root, installs the packages that are
# not installed yet; `apt-get update` runs once, and only when one is missing.

log() { printf '\n==> %s\n' "$*"; }

install_packages() {
  if [ "$(id -u)" -ne 0 ]; then
    log "not root: skipping package installation"
    return 0
  fi
  if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    log "no dpkg/apt-get: skipping package installation"
    return 0
  fi
  local missing=() p status
  for p in "$@"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "all $# required packages are installed"
    return 0
  fi
  log "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
}
