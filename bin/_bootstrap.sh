# Sourced by bin/start and bin/test: a virtual environment with requirements.txt installed.
# Re-installs only when requirements.txt changes, so later starts are quick.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${DISPREDO_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10) or sys.version_info >= (3, 14))'; then
  echo "Dispredo needs Python 3.10 to 3.13 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.x" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating the virtual environment in $VENV ..."
  "$PYTHON" -m venv "$VENV"
fi
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
stamp="$VENV/.requirements.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "Installing Python packages from requirements.txt (the first time takes a few minutes) ..."
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
