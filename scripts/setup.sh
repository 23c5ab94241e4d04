#!/usr/bin/env bash
# Installs everything moca-ts needs on a fresh Debian/Ubuntu machine, then builds it:
#   - libtorch (Debian's libtorch-dev) unless LIBTORCH points at an official libtorch,
#   - OpenBLAS (Debian's libtorch otherwise falls back to the reference BLAS, ~50x slower matmuls),
#   - Gloo's headers (libgloo-dev) for multi-process training on c10d,
#   - Debian's chromium (the search-page test drives it headless),
#   - node dependencies (npm ci), the native binding (node-gyp, offline, against this Node's headers),
#   - the TypeScript build.
# Pass --with-peer to also install Debian's PyTorch (python3-torch), used by benchmarks and fixture scripts.
# Safe to re-run: it only does what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

with_peer=0
for arg in "$@"; do
  case "$arg" in
    --with-peer) with_peer=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

packages=()
if [ -z "${LIBTORCH:-}" ]; then
  [ -f /usr/include/ATen/ATen.h ] && [ -f /usr/include/torch/csrc/autograd/autograd.h ] || packages+=(libtorch-dev)
  ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0' || packages+=(libopenblas0-openmp)
fi
# Gloo's headers (libgloo-dev) for the data-parallel backend; libtorch itself carries its symbols.
if [ ! -f /usr/include/gloo/context.h ] && { [ -z "${LIBTORCH:-}" ] || [ ! -f "$LIBTORCH/include/gloo/context.h" ]; }; then
  packages+=(libgloo-dev)
fi
if [ "$with_peer" = 1 ]; then
  /usr/bin/python3 -c 'import torch' 2>/dev/null || packages+=(python3-torch)
fi
if ! command -v g++ >/dev/null || ! command -v make >/dev/null; then packages+=(g++ make); fi
# Headless Chromium for the search-page test (driven by playwright-core; no browser download).
[ -x /usr/bin/chromium ] || packages+=(chromium)

if [ ${#packages[@]} -gt 0 ]; then
  echo "setup: installing ${packages[*]} (apt)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "setup: missing system packages. Install them with:" >&2
    echo "    sudo apt-get install -y ${packages[*]}" >&2
    echo "(or set LIBTORCH=/path/to/libtorch to use an official libtorch)" >&2
    exit 1
  fi
fi

binding=native/build/Release/moca_torch.node
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci (installs dependencies and builds the native binding)" >&2
  npm ci --no-audit --no-fund
elif [ ! -f "$binding" ] || [ -n "$(find native/src native/binding.gyp -newer "$binding" 2>/dev/null | head -n 1)" ]; then
  echo "setup: building the native binding" >&2
  npm run --silent build:native
fi

echo "setup: compiling TypeScript" >&2
npm run --silent build
echo "setup: done" >&2
