#!/usr/bin/env bash
# Refreshes tools/requirements.lock against the newest releases: installs rendiff with its test
# extras into a new, empty venv with nothing pinned but torch, runs the whole test suite there,
# and only if it passes writes the exact version of every installed package into the lock.
#   make lock && git commit -m "Refresh the dependency lock" tools/requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-lock
lock=tools/requirements.lock

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
echo "rendiff lock: installing the newest releases into $VENV"
"${pip[@]}" install -q "torch==2.13.0"
"${pip[@]}" install -q -c tools/torch.txt -e ".[test]"
"$VENV/bin/python" -c "from rendiff.engine.physics import warmup; warmup()"
"$VENV/bin/python" -c "from rendiff.engine.deformables import warmup; warmup()"
echo "rendiff lock: running the test suite against them"
"$VENV/bin/python" -m pytest -n 2 -q -p no:cacheprovider
{
  echo "# Exact versions of every package rendiff and its tests were last tested with (CPython 3.11,"
  echo "# Linux x86_64). tools/setup.sh installs with this file as pip constraints. Refresh it with"
  echo "# 'make lock' (tools/lock.sh: newest releases, whole suite, then this file), then commit it."
  echo "# torch carries no local label (+cpu / +cuXXX): the machine's own 2.13.0 wheel is taken."
  "${pip[@]}" freeze --all --exclude-editable | grep -viE '^(pip|rendiff)==' \
    | sed -E 's/^(torch==[^+]+)\+.*/\1/' | LC_ALL=C sort -f
} > "$lock.new"
mv "$lock.new" "$lock"
rm -rf "$VENV"
git --no-pager diff --stat -- "$lock" || true
echo "rendiff lock: $lock written; commit it"
