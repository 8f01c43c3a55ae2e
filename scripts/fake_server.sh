# fake_server.sh: sourced by scripts that need the fake Archetype API.
# fake_server_start [ARGS...] runs spec/support/fake_api.lua (always under
# lua5.4) with these extra arguments (e.g. --latency 300) and exports
# ATAI_API_ENDPOINT and ATAI_API_KEY for it; it may be called again for
# more servers (the exports then name the last one). fake_server_stop ends
# them all.
FAKE_KEY=${FAKE_KEY:-test-key}
fake_pids=""
fake_outs=""

fake_server_start() {
  fake_out=$(mktemp)
  lua5.4 spec/support/fake_api.lua --port 0 --key "$FAKE_KEY" "$@" >"$fake_out" &
  fake_pid=$!
  fake_pids="$fake_pids $fake_pid"
  fake_outs="$fake_outs $fake_out"
  tries=0
  while ! grep -q '^PORT ' "$fake_out" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$fake_pid" 2>/dev/null; then
      echo "fake server did not start" >&2
      return 1
    fi
    sleep 0.05
  done
  fake_port=$(sed -n 's/^PORT //p' "$fake_out")
  export ATAI_API_ENDPOINT="http://127.0.0.1:$fake_port/v0.5"
  export ATAI_API_KEY="$FAKE_KEY"
}

fake_server_stop() {
  for pid in $fake_pids; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # shellcheck disable=SC2086
  [ -z "$fake_outs" ] || rm -f $fake_outs
  fake_pids=""
  fake_outs=""
}
