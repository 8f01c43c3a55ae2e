# fake_server.sh: sourced by scripts that need the fake Archetype API.
# fake_server_start runs spec/support/fake_api.lua (always under lua5.4)
# and exports ATAI_API_ENDPOINT and ATAI_API_KEY for it; fake_server_stop
# ends it.
FAKE_KEY=${FAKE_KEY:-test-key}

fake_server_start() {
  fake_out=$(mktemp)
  lua5.4 spec/support/fake_api.lua --port 0 --key "$FAKE_KEY" >"$fake_out" &
  fake_pid=$!
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
  kill "$fake_pid" 2>/dev/null || true
  wait "$fake_pid" 2>/dev/null || true
  rm -f "$fake_out"
}
