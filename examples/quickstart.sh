#!/usr/bin/env bash
# Builds mcp-warden and the example test server, puts `mcp-warden serve` in front of two
# copies of that server, and plays a short client session over stdio, printing every
# message both ways. Nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --bin mcp-warden --example test_server
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MCP_WARDEN_HOME="$tmp/warden"
mkdir -p "$MCP_WARDEN_HOME"
server="$PWD/target/debug/examples/test_server"
cat >"$MCP_WARDEN_HOME/config.toml" <<TOML
# Two upstream servers; their tools appear as alpha__* and beta__*.
[servers.alpha]
command = "$server"
args = ["--name", "alpha"]

[servers.beta]
command = "$server"
args = ["--name", "beta"]
TOML
echo "config ($MCP_WARDEN_HOME/config.toml):"
sed 's/^/    /' "$MCP_WARDEN_HOME/config.toml"
echo

# Pinning is strict by default: a server's tools are held until you review and pin them.
echo "\$ mcp-warden pins    # what the servers offer, next to what is pinned"
target/debug/mcp-warden pins --workspace "$tmp" | sed 's/^/    /' || true
echo "\$ mcp-warden pin --yes"
target/debug/mcp-warden pin --yes --workspace "$tmp" | tail -1 | sed 's/^/    /'
echo

coproc WARDEN { exec target/debug/mcp-warden serve --workspace "$tmp" 2>"$tmp/stderr"; }
to_warden=${WARDEN[1]}
from_warden=${WARDEN[0]}

show() { local text="$1"; ((${#text} > 240)) && text="${text:0:240}..."; printf '%s %s\n' "$2" "$text"; }

# send MESSAGE [ANSWERS]: writes one line, then prints the ANSWERS lines that come back.
send() {
    show "$1" "client  ->"
    printf '%s\n' "$1" >&"$to_warden"
    local n="${2:-1}" line
    for ((i = 0; i < n; i++)); do
        IFS= read -r -t 10 line <&"$from_warden" || { echo "(no answer)"; return; }
        show "$line" "warden <-"
    done
}

send '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"quickstart","version":"1"}}}'
send '{"jsonrpc":"2.0","method":"notifications/initialized"}' 0
send '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
send '{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"alpha__echo","arguments":{"message":"hello alpha"}}}'
send '{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"beta__echo","arguments":{"message":"hello beta"}}}'
echo "# a message with a duplicate key is refused, never forwarded:"
send '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__echo","name":"alpha__crash"}}'
echo "# and the session goes on:"
send '{"jsonrpc":"2.0","id":3,"method":"ping"}'

# Closing stdin is how a client leaves: mcp-warden stops every server and exits.
eval "exec ${to_warden}>&-"
wait "$WARDEN_PID" || true
echo
echo "mcp-warden exited; its log is in \$MCP_WARDEN_HOME/data/logs (upstream stderr included)."
