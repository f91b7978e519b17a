#!/usr/bin/env bash
# Installs everything rendiff needs into ./.venv (or $VENV): Debian's system libraries, the CPU
# torch wheel first, then the package with its test extras at the exact versions of
# tools/requirements.lock (the ones the suite last passed with; torch pinned there too, so that
# no dependency can pull another torch build). 'make lock' refreshes the lock (tools/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
for lib in libusb-1.0-0 libgomp1; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if ((${#need_apt[@]})); then
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  echo "rendiff setup: installing system libraries: ${need_apt[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [[ ! -x $VENV/bin/python ]]; then
  echo "rendiff setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
stamp="$VENV/.rendiff-installed"
if [[ -f $stamp && $stamp -nt pyproject.toml && $stamp -nt tools/requirements.lock ]]; then
  exit 0
fi
echo "rendiff setup: installing torch (CPU) and rendiff into $VENV (first time: a few minutes)"
"${pip[@]}" install -q "torch==2.13.0"
"${pip[@]}" install -q -c tools/requirements.lock -e ".[test]"
echo "rendiff setup: compiling the physics and CPU render kernels once (cached in ~/.cache/warp)"
"$VENV/bin/python" -c "from rendiff.engine.physics import warmup; warmup()"
"$VENV/bin/python" -c "from rendiff.engine.deformables import warmup; warmup()"
"$VENV/bin/python" -c "from rendiff.kernels.warp_cpu import warmup; warmup()"
touch "$stamp"
