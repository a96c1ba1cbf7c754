#!/usr/bin/env bash
# Idempotent set-up from nothing on a Debian machine: the Mesa GL libraries that
# MuJoCo renders with headless (EGL, OSMesa fallback), a virtual environment
# in .venv, and wm-core with every plugin installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_gl=0
for lib in libEGL.so.1 libEGL_mesa.so.0 libOSMesa.so; do
  ldconfig -p | grep -q "$lib" || missing_gl=1
done
if [ "$missing_gl" = 1 ]; then
  echo "setup: installing Mesa GL libraries (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.wm-installed
inputs=$(cat pyproject.toml plugins/*/pyproject.toml | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$inputs" ]; then
  echo "setup: installing wm-core and plugins into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  plugin_args=()
  for project in plugins/*/pyproject.toml; do plugin_args+=(-e "${project%/pyproject.toml}"); done
  .venv/bin/python -m pip install -q -e ".[test,dmc,atari,ray]" "${plugin_args[@]}"
  echo "$inputs" > "$stamp"
fi
