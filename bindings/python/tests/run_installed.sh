#!/usr/bin/env bash
# The Python package as users get it. Installs libvigil from a build tree
# into a scratch prefix (cmake --install), pip-installs bindings/python into
# a fresh venv, offline (--no-index --no-build-isolation: setuptools and
# wheel come from the system site-packages, Debian's python3-setuptools and
# python3-wheel), and runs the package's tests with that venv's python from
# outside the source tree, the prefix on the loader path only through
# LD_LIBRARY_PATH. test_library.py checks the package and the library came
# from there (VIGIL_TEST_INSTALLED=1).
#
# usage: run_installed.sh BUILD_DIR PYTHON CMAKE
#   PYTHON makes the venv: the distribution's python3, whose site-packages
#   hold the build backend. The scratch directory is BUILD_DIR/python-
#   installed, made anew each run and kept for a look after a failure.
# Exit 77 (ctest SKIP) when PYTHON cannot make a venv or lacks the backend.
set -euo pipefail

BUILD=$(readlink -f "${1:?usage: $0 BUILD_DIR PYTHON CMAKE}")
PYTHON=${2:?usage: $0 BUILD_DIR PYTHON CMAKE}
CMAKE=${3:?usage: $0 BUILD_DIR PYTHON CMAKE}
TESTS=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
PACKAGE=$(dirname "$TESTS")
WORK=$BUILD/python-installed

skip() { echo "SKIP: $*"; exit 77; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null \
  || skip "$PYTHON cannot make a venv (Debian: python3-venv)"
"$PYTHON" -c 'import setuptools, wheel' 2>/dev/null \
  || skip "$PYTHON lacks setuptools or wheel (Debian: python3-setuptools python3-wheel)"

rm -rf "$WORK"
mkdir -p "$WORK/src"

echo "== cmake --install $BUILD --prefix $WORK/prefix"
"$CMAKE" --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log"
soname=$(find "$WORK/prefix" -name libvigil.so.0 -print -quit)
[ -n "$soname" ] || { echo "FAIL: no libvigil.so.0 under $WORK/prefix"; exit 1; }
libdir=$(dirname "$soname")

echo "== $PYTHON -m venv --system-site-packages $WORK/venv"
"$PYTHON" -m venv --system-site-packages "$WORK/venv"

# setuptools builds in the source directory (build/, *.egg-info): build
# from a copy so the checkout stays clean and nothing stale gets in.
tar -C "$PACKAGE" --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./tests -cf - . | tar -C "$WORK/src" -xf -
echo "== pip install --no-index --no-build-isolation bindings/python"
"$WORK/venv/bin/python" -m pip install --no-index --no-build-isolation \
  --disable-pip-version-check "$WORK/src" >"$WORK/pip.log" 2>&1 \
  || { cat "$WORK/pip.log"; echo "FAIL: pip install"; exit 1; }
grep -E '^Successfully installed' "$WORK/pip.log"

echo "== the package's tests, installed package and library ($libdir)"
cd "$WORK"  # not the package's parent: no way to import the source tree
env -u VIGIL_LIBRARY -u VIGIL_BUILD_DIR -u PYTHONPATH \
  LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  VIGIL_TEST_INSTALLED=1 VIGIL_TEST_PREFIX="$WORK/prefix" \
  PYTHONDONTWRITEBYTECODE=1 \
  "$WORK/venv/bin/python" -m unittest discover -v -s "$TESTS" -t "$TESTS"
