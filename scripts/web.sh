#!/usr/bin/env bash
# The browser build (web/: the library on wasm32 + WebGPU, a page that trains, a kernel
# self-test).
#   scripts/web.sh build            target/web: the wasm, wasm-bindgen's JS glue, the pages
#   scripts/web.sh serve [PORT]     build, then serve on http://127.0.0.1:PORT/ (8123)
#   scripts/web.sh test             build, serve on loopback, run the self-test page in
#                                   headless Chromium; prints `web: N passed, M failed`,
#                                   exits non-zero on a failure, a timeout or no adapter
#   scripts/web.sh screenshot PNG [STEPS]
#                                   the training page comparing ReZero and Post-Norm in
#                                   headless Chromium, as a PNG after STEPS steps (100)
# Needs: rustup, python3, and for test/screenshot Debian's chromium and chromium-driver.
# wasm-bindgen's command line is built from source at the version Cargo.lock pins.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/web
# Most seconds the self-test page may take (SwiftShader takes about a minute).
TIMEOUT=${REZERO_WEB_TIMEOUT:-300}

# The wasm-bindgen version Cargo.lock pins (the glue and the crate must match exactly).
pinned_wasm_bindgen() {
  awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

ensure_tools() {
  rustup target list --installed | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown
  local want
  want=$(pinned_wasm_bindgen)
  [ -n "$want" ] || { echo "web: Cargo.lock pins no wasm-bindgen" >&2; exit 1; }
  if [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $want" ]; then return; fi
  echo "web: building wasm-bindgen-cli $want from source"
  # --locked first; where the registry no longer serves a dependency its lock file names
  # (a yanked crate), resolve again at the same wasm-bindgen-cli version.
  cargo install --quiet --locked wasm-bindgen-cli --version "=$want" ||
    cargo install --quiet wasm-bindgen-cli --version "=$want"
}

build() {
  ensure_tools
  cargo build --release -p rezero-web --target wasm32-unknown-unknown
  rm -rf "$OUT"
  mkdir -p "$OUT"
  wasm-bindgen --target web --no-typescript --out-dir "$OUT/pkg" \
    target/wasm32-unknown-unknown/release/rezero_web.wasm
  cp web/www/* "$OUT/"
}

# Serves target/web on a free loopback port in the background; sets PORT and SERVER.
serve_background() {
  PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$OUT" "$PORT" >/dev/null 2>&1 &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null' EXIT
  for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "web: the server did not start" >&2
  exit 1
}

case "${1:-}" in
  build) build ;;
  serve)
    build
    port=${2:-8123}
    echo "web: open http://127.0.0.1:$port/ (training) or http://127.0.0.1:$port/selftest.html"
    exec python3 -m http.server --bind 127.0.0.1 --directory "$OUT" "$port"
    ;;
  test)
    build
    serve_background
    python3 scripts/web_driver.py selftest --url "http://127.0.0.1:$PORT/selftest.html" \
      --timeout "$TIMEOUT"
    ;;
  screenshot)
    [ -n "${2:-}" ] || { echo "usage: scripts/web.sh screenshot FILE.png" >&2; exit 2; }
    build
    serve_background
    # ReZero against Post-Norm, 4 windows a step (SwiftShader is slow), started at once.
    python3 scripts/web_driver.py screenshot \
      --url "http://127.0.0.1:$PORT/index.html?compare&batch=4&autostart" \
      --out "$2" --steps "${3:-100}" --timeout "${REZERO_WEB_TIMEOUT:-900}"
    ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
