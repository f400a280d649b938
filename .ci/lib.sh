# Shared helpers for the CI scripts. Source it: `. "$(dirname "$0")/lib.sh"`.

# Runs "$@" up to 3 times with a pause between tries (downloads can fail transiently).
retry() {
  local n=1
  until "$@"; do
    if [ "$n" -ge 3 ]; then
      echo "ci: failed after $n tries: $*" >&2
      return 1
    fi
    n=$((n + 1))
    echo "ci: retrying ($n/3): $*" >&2
    sleep 5
  done
}

_apt_updated=""
# Installs the Debian packages given that are not installed yet; fails naming what is missing.
need_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  echo "ci: installing ${missing[*]}"
  if [ -z "$_apt_updated" ]; then
    retry apt-get update -qq || { echo "ci: apt-get update failed; cannot install ${missing[*]}" >&2; return 1; }
    _apt_updated=1
  fi
  if ! retry env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "ci: could not install Debian packages: ${missing[*]}" >&2
    return 1
  fi
}

# Prints a section header with the elapsed time.
section() {
  echo
  echo "=== $* ($(date -u +%H:%M:%S), ${SECONDS}s) ==="
}
