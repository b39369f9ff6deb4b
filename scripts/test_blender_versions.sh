#!/usr/bin/env bash
# The Blender version matrix: the extension's tests on every supported bpy release.
#
#   scripts/test_blender_versions.sh                   # full matrix: 4.2.23 4.5.15 5.0.1
#   scripts/test_blender_versions.sh --smoke 4.2.23    # the smoke subset on some versions (CI)
#   scripts/test_blender_versions.sh --python 3.12     # also: the server installed and tested on CPython 3.12
#   scripts/test_blender_versions.sh --no-bpy --python 3.12   # only that
#
# Needs the project's .venv (bash setup.sh): it runs the server side, and builds the
# extension zip once (build_addon.py, Blender 5.0's own tooling); the same zip is then
# installed into a fresh Blender user folder under each version (tests/test_addon.py).
# Per version: the bpy wheel is downloaded once into $T2M_BPY_WHEELS, and a virtual
# environment in $T2M_BPY_VENVS/<version> holds only that bpy and numpy 1.26; a .pth file
# appends .venv's site-packages after its own, so the tests' server subprocesses (torch)
# run from there while `import bpy` gets this version.
# Output: one line per version (tests passed/failed, seconds) on stdout and in
# $OUT/summary.txt (default build/blender-versions); each pytest log beside it. Exit
# status 1 if any version failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

FULL_TESTS=(tests/test_keyframes.py tests/test_colors.py tests/test_addon_ops.py tests/test_addon.py
            tests/test_retarget.py tests/test_retarget_bonemap.py tests/test_batch.py tests/test_demo.py)
SMOKE_TESTS=(tests/test_keyframes.py tests/test_colors.py tests/test_addon.py)
DEFAULT_VERSIONS=(4.2.23 4.5.15 5.0.1)

MAIN_PY=${MAIN_PY:-$ROOT/.venv/bin/python}
WHEELS=${T2M_BPY_WHEELS:-$HOME/.cache/t2m-bpy-wheels}
VENVS=${T2M_BPY_VENVS:-$HOME/.cache/t2m-bpy-venvs}
OUT=${OUT:-$ROOT/build/blender-versions}
PY311=${PY311:-python3.11}

tests=("${FULL_TESTS[@]}")
versions=()
pythons=()
no_bpy=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) tests=("${SMOKE_TESTS[@]}") ;;
    --python) pythons+=("$2"); shift ;;
    --no-bpy) no_bpy=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) versions+=("$1") ;;
  esac
  shift
done
[ ${#versions[@]} -gt 0 ] || [ $no_bpy -eq 1 ] || versions=("${DEFAULT_VERSIONS[@]}")

[ -x "$MAIN_PY" ] || { echo "no $MAIN_PY: run 'bash setup.sh' first" >&2; exit 2; }
command -v "$PY311" >/dev/null || PY311=$MAIN_PY
mkdir -p "$WHEELS" "$VENVS" "$OUT"
: > "$OUT/summary.txt"
MAIN_SITE=$("$MAIN_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

echo "building the extension zip (linux-x64)" >&2
rm -rf "$OUT/dist"
"$MAIN_PY" build_addon.py --platform linux-x64 --out "$OUT/dist" --build-dir "$OUT/build" >&2
ZIP=$(ls "$OUT"/dist/text_to_motion-*-linux_x64.zip)

bpy_venv() {  # $1: version -> prints the venv's python, made (once) with that bpy
  local version=$1 venv=$VENVS/$1
  local python=$venv/bin/python
  if ! "$python" -c "import importlib.metadata as m, sys; sys.exit(m.version('bpy') != '$version')" 2>/dev/null; then
    if ! ls "$WHEELS"/bpy-"$version"-*.whl >/dev/null 2>&1; then
      echo "downloading bpy $version into $WHEELS" >&2
      "$PY311" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 "bpy==$version" -d "$WHEELS" >&2
    fi
    rm -rf "$venv"
    "$PY311" -m venv "$venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check --find-links "$WHEELS" \
      "bpy==$version" "numpy>=1.26,<2" >&2
  fi
  local site
  site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$MAIN_SITE')" > "$site/zz_t2m_main_venv.pth"
  echo "$python"
}

status=0
run_tests() {  # $1: label, $2: python, rest: pytest arguments
  local label=$1 python=$2 log=$OUT/$1.log start end line
  shift 2
  start=$(date +%s)
  set +e
  T2M_ADDON_ZIP=$ZIP "$python" -m pytest -q -p no:cacheprovider "$@" > "$log" 2>&1
  local rc=$?
  set -e
  end=$(date +%s)
  line=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|no tests ran' "$log" | tail -1 | tr -d '=' | xargs)
  printf '%-12s %-60s %4d s  rc=%d\n' "$label" "${line:-no pytest summary, see $log}" $((end - start)) $rc \
    | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}

for version in "${versions[@]}"; do
  python=$(bpy_venv "$version")
  T2M_EXPECT_BLENDER=$version run_tests "bpy-$version" "$python" "${tests[@]}"
done

# CPython 3.12 / 3.13: the package installs with the server extras (torch, timm, transformers,
# ... from the same index as setup.sh; bpy's extra is empty there) and the server-side tests
# run: the model, index, search, ZeroMQ server and wire, without Blender.
SERVER_TESTS=(tests/test_angles.py tests/test_jami.py tests/test_motion.py tests/test_data_synthetic.py
              tests/test_data_bvh.py tests/test_data_humanml3d.py tests/test_pictures.py tests/test_maxsim.py
              tests/test_model.py tests/test_index.py tests/test_search.py tests/test_engine.py
              tests/test_protocol.py tests/test_bridge.py tests/test_server.py tests/test_skeleton_map.py
              tests/test_ordered.py tests/test_sequence_parser.py tests/test_stitch.py)
for minor in "${pythons[@]}"; do
  interpreter=$(command -v "python$minor" || true)
  [ -n "$interpreter" ] && "$interpreter" -c 'pass' 2>/dev/null || interpreter=$(ls -d "$HOME"/.pyenv/versions/"$minor"*/bin/python"$minor" 2>/dev/null | tail -1)
  if [ -z "$interpreter" ]; then
    echo "python$minor       not on this machine: skipped" | tee -a "$OUT/summary.txt"
    continue
  fi
  venv=$VENVS/py$minor
  [ -x "$venv/bin/python" ] || "$interpreter" -m venv "$venv"
  if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[server,qdrant,blender]" \
       pytest pytest-timeout scipy >&2; then
    echo "python$minor     pip install -e .[server,qdrant,blender] installed ($("$venv/bin/python" -c \
      'import torch, timm, transformers; print("torch", torch.__version__)'))" | tee -a "$OUT/summary.txt"
  else
    echo "python$minor     pip install -e .[server,qdrant,blender] FAILED" | tee -a "$OUT/summary.txt"
    status=1
    continue
  fi
  run_tests "python$minor" "$venv/bin/python" "${SERVER_TESTS[@]}"
done
exit $status
