# Sourced by bin/start, bin/dicom-listener and bin/test with one argument, the requirements file to
# install: requirements/web.txt (the web application) or requirements.txt (everything: web, training
# and tests). One virtual environment serves both. Each file installed leaves a stamp (its sha256
# and that of the files it includes), so pip runs again only when a file changes; installing
# requirements.txt stamps the files it includes too, so bin/start after bin/test installs nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${DISPREDO_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="${1:?usage: source bin/_bootstrap.sh REQUIREMENTS_FILE}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11) or sys.version_info >= (3, 14))'; then
  echo "Dispredo needs Python 3.11 to 3.13 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.x" >&2
  exit 1
fi

requirement_files() {  # requirement_files FILE: FILE, then the files it includes (-r), recursively
  realpath --relative-to="$ROOT" "$1"
  local included
  sed -nE 's/^[[:space:]]*(-r|--requirement)[[:space:]=]+([^[:space:]#]+).*/\2/p' "$1" | while read -r included; do
    requirement_files "$(dirname "$1")/$included"
  done
}

stamp_file() { echo "$VENV/.requirements-$(realpath --relative-to="$ROOT" "$1" | tr '/' '-').sha256"; }
wanted_stamp() { requirement_files "$1" | xargs sha256sum; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtual environment in $VENV ..."
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$(stamp_file "$REQUIREMENTS")" 2>/dev/null || true)" != "$(wanted_stamp "$REQUIREMENTS")" ]; then
  echo "Installing Python packages from $REQUIREMENTS (the first time takes a few minutes) ..."
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$REQUIREMENTS"
  for installed in $(requirement_files "$REQUIREMENTS"); do
    wanted_stamp "$installed" > "$(stamp_file "$installed")"
  done
fi
export PATH="$VENV/bin:$PATH"
