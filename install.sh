#!/usr/bin/env bash
# install.sh: build and install mcp-warden, or install the pinned test dependencies.
#
#   ./install.sh                    build the release binary and install it to
#                                   $PREFIX/bin/mcp-warden when PREFIX is set, else to the
#                                   first of ${CARGO_HOME:-~/.cargo}/bin and ~/.local/bin
#                                   that is on PATH (cargo's when neither is)
#   ./install.sh --test-deps [DIR]  install the pinned MCP reference servers and the Python
#                                   and TypeScript MCP SDKs used by the integration tests into DIR
#                                   (default: $MCP_WARDEN_TEST_PREFIX or /opt/mcp-warden-test)
#
# The test prefix is world-readable on purpose: mcp-warden, run as root, starts servers
# under other uids, and those cannot read anything under /root (a venv, an npm cache).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPS="$ROOT/tests/deps"
DEFAULT_TEST_PREFIX=/opt/mcp-warden-test
STAMP_NAME=mcp-warden-test-deps.stamp
# Bump when the layout of the prefix or the way it is built changes.
STAMP_FORMAT=2

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

usage() {
    cat <<EOF
usage: ./install.sh                    build and install mcp-warden to \$PREFIX/bin, else to the
                                       first of \${CARGO_HOME:-~/.cargo}/bin and ~/.local/bin on PATH
       ./install.sh --test-deps [DIR]  install the pinned test dependencies into DIR
                                       (default: \$MCP_WARDEN_TEST_PREFIX or $DEFAULT_TEST_PREFIX)
EOF
}

# Where the binary goes, when PREFIX does not say: the first of cargo's own bin dir
# (${CARGO_HOME:-~/.cargo}/bin, on PATH for anyone who installed Rust with rustup) and
# ~/.local/bin that is on PATH, so `./install.sh && mcp-warden demo` works as written;
# cargo's bin dir when neither is (and then we say how to add it).
bin_dir() {
    if [[ -n "${PREFIX:-}" ]]; then
        printf '%s\n' "$PREFIX/bin"
        return
    fi
    local home="${HOME:?HOME is not set; set PREFIX}"
    local cargo_bin="${CARGO_HOME:-$home/.cargo}/bin" dir
    for dir in "$cargo_bin" "$home/.local/bin"; do
        case ":$PATH:" in
            *":$dir:"* | *":$dir/:"*)
                printf '%s\n' "$dir"
                return
                ;;
        esac
    done
    printf '%s\n' "$cargo_bin"
}

install_binary() {
    local bin
    bin="$(bin_dir)"
    command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
    local t0
    t0="$(now)"
    say "building the release binary (cargo build --release --locked)"
    (cd "$ROOT" && cargo build --release --locked --bin mcp-warden)
    local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    install -D -m 0755 "$target_dir/release/mcp-warden" "$bin/mcp-warden"
    say "installed $bin/mcp-warden ($(since "$t0"))"
    "$bin/mcp-warden" --version >&2 || true
    local found
    found="$(command -v mcp-warden || true)"
    case ":$PATH:" in
        *":$bin:"* | *":$bin/:"*)
            if [[ -n "$found" && "$found" != "$bin/mcp-warden" ]]; then
                say "warning: \`mcp-warden\` runs $found, which comes before $bin on your PATH; remove it, or run $bin/mcp-warden"
            fi
            ;;
        *)
            say "note: $bin is not on your PATH, so \`mcp-warden\` alone will not be found; add it:"
            say "  export PATH=\"$bin:\$PATH\"   # and in your shell's profile"
            ;;
    esac
}

# The interpreter the test venv is built from. It must live somewhere every uid can read:
# Debian's /usr/bin/python3 does; a pyenv or other build under /root does not.
pick_python() {
    if [[ -n "${MCP_WARDEN_TEST_PYTHON:-}" ]]; then
        printf '%s\n' "$MCP_WARDEN_TEST_PYTHON"
        return
    fi
    local candidate
    for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]] &&
            "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    die "no usable python3 (3.10+ with the venv module) found; on Debian: apt-get install python3-venv; or set MCP_WARDEN_TEST_PYTHON"
}

# Warn when some directory above DIR is not searchable by other users.
check_ancestors() {
    local dir
    dir="$(dirname "$1")"
    while [[ "$dir" != / ]]; do
        if [[ -d "$dir" ]] && ((!(8#$(stat -c %a "$dir") & 1))); then
            say "warning: $dir is not searchable by other users; servers run under another uid will not reach $1"
            return
        fi
        dir="$(dirname "$dir")"
    done
}

deps_hash() {
    local python="$1"
    {
        printf 'format %s\n' "$STAMP_FORMAT"
        sha256sum "$DEPS/package.json" "$DEPS/package-lock.json" "$DEPS/requirements.txt" \
            "$DEPS/requirements-mcp1.txt" | cut -d' ' -f1
        printf 'python %s %s\n' "$(readlink -f "$python")" "$("$python" -c 'import sys; print(sys.version.split()[0])')"
        printf 'node %s\n' "$(node --version | cut -d. -f1)"
    } | sha256sum | cut -d' ' -f1
}

# As root, prove that an unprivileged uid can use what was installed.
check_as_nobody() {
    local dir="$1"
    [[ "$(id -u)" == 0 ]] && command -v runuser >/dev/null && id nobody >/dev/null 2>&1 || return 0
    runuser -u nobody -- "$dir/venv/bin/python" -c 'import mcp, mcp_server_time, mcp_server_git' ||
        die "user nobody cannot use $dir/venv (is the interpreter or a parent directory private?)"
    runuser -u nobody -- "$dir/venv-mcp1/bin/python" -c 'import mcp.server.fastmcp' ||
        die "user nobody cannot use $dir/venv-mcp1"
    # Read each package.json directly: the SDK packages do not export it.
    runuser -u nobody -- node -e '
        const fs = require("fs"), path = require("path"), dir = process.argv[1];
        for (const p of ["server-everything", "server-filesystem", "server-memory", "client", "server"])
            JSON.parse(fs.readFileSync(path.join(dir, "node_modules/@modelcontextprotocol", p, "package.json")));
    ' "$dir/node" || die "user nobody cannot read $dir/node/node_modules"
}

# The pinned lines of a requirements file, sorted: what `pip freeze` of its venv must print.
pins() { grep -v '^#' "$1" | grep -v '^$' | sort; }

# Each part of the prefix is rebuilt only when it differs from its pins, and a rebuilt part
# replaces the old one by a rename, so tests running from the prefix meanwhile keep
# working (other checkouts' tests share it).
node_is_current() {
    cmp -s "$DEPS/package-lock.json" "$1/node/package-lock.json" &&
        [[ -f "$1/node/node_modules/.package-lock.json" ]]
}
venv_is_current() {
    local venv="$1" requirements="$2"
    [[ -x "$venv/bin/python" ]] &&
        diff -q <(pins "$requirements") \
            <("$venv/bin/python" -m pip freeze --all --disable-pip-version-check 2>/dev/null |
                grep -v -E '^(pip|setuptools|wheel)==' | sort) >/dev/null
}

# swap_in NEW DEST: put the finished NEW in the place of DEST.
swap_in() {
    local new="$1" dest="$2"
    if [[ -e "$dest" ]]; then
        rm -rf "$dest.old"
        mv -f "$dest" "$dest.old"
    fi
    mv -f "$new" "$dest"
    rm -rf "$dest.old"
}

install_node() {
    local dir="$1" t
    t="$(now)"
    rm -rf "$dir/node.new"
    mkdir -p "$dir/node.new"
    cp "$DEPS/package.json" "$DEPS/package-lock.json" "$dir/node.new/"
    say "npm ci ($(node --version), npm $(npm --version)) -> $dir/node/node_modules"
    (cd "$dir/node.new" &&
        npm ci --cache "$dir/.npm-cache" --ignore-scripts --no-audit --no-fund \
            --no-update-notifier --loglevel=warn </dev/null)
    swap_in "$dir/node.new" "$dir/node"
    say "npm packages installed ($(since "$t"))"
}

# install_venv PYTHON REQUIREMENTS DEST: a fresh venv from a world-readable interpreter,
# fully pinned. A venv holds its own absolute path, so it is built at DEST: while it is
# rebuilt, that one venv is missing.
install_venv() {
    local python="$1" requirements="$2" venv="$3" t
    t="$(now)"
    say "python venv from $python ($("$python" --version 2>&1)) -> $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    PIP_NO_CACHE_DIR=1 "$venv/bin/python" -m pip install --no-cache-dir --no-input \
        --disable-pip-version-check --quiet -r "$requirements" </dev/null
    say "python packages installed ($(since "$t"))"
}

install_test_deps() {
    local dir="$1"
    [[ -n "$dir" ]] || die "empty test prefix"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd -P)"
    command -v node >/dev/null || die "node not found (Node.js 20+ is needed for the npm test servers)"
    command -v npm >/dev/null || die "npm not found"
    local python hash stamp="$dir/$STAMP_NAME"
    python="$(pick_python)"
    hash="$(deps_hash "$python")"

    # One installer at a time per prefix.
    if command -v flock >/dev/null; then
        exec 9>"$dir/.install.lock"
        flock 9
    fi

    if [[ -f "$stamp" && "$(head -n1 "$stamp")" == "$hash" && -x "$dir/venv/bin/python" &&
        -x "$dir/venv-mcp1/bin/python" && -d "$dir/node/node_modules/.bin" && -d "$dir/wheels" ]]; then
        say "test dependencies already installed in $dir (stamp matches)"
        return 0
    fi

    local t0 t
    t0="$(now)"
    say "installing test dependencies into $dir"
    rm -f "$stamp"
    check_ancestors "$dir"

    # npm: exactly what package-lock.json pins; the cache lives in the prefix, not under $HOME.
    if node_is_current "$dir"; then
        say "npm packages in $dir/node match package-lock.json"
    else
        install_node "$dir"
    fi

    # Python: the `mcp` 2.x venv with the reference servers, and the `mcp` 1.x one
    # (legacy era only). A venv is kept when its interpreter is the chosen one and its
    # `pip freeze` is the pins.
    local venv requirements
    for venv in venv venv-mcp1; do
        requirements="$DEPS/requirements.txt"
        [[ "$venv" == venv-mcp1 ]] && requirements="$DEPS/requirements-mcp1.txt"
        if [[ "$(readlink -f "$dir/$venv/bin/python" 2>/dev/null)" == "$(readlink -f "$python")" ]] &&
            venv_is_current "$dir/$venv" "$requirements"; then
            say "python packages in $dir/$venv match $(basename "$requirements")"
        else
            install_venv "$python" "$requirements" "$dir/$venv"
        fi
    done

    # The same pins as wheels, so a `uvx` server can be started offline in the tests.
    if cmp -s "$DEPS/requirements.txt" "$dir/requirements.txt" && [[ -d "$dir/wheels" ]]; then
        say "wheels in $dir/wheels match requirements.txt"
    else
        t="$(now)"
        rm -rf "$dir/wheels.new"
        PIP_NO_CACHE_DIR=1 "$dir/venv/bin/python" -m pip download --no-cache-dir --no-input \
            --disable-pip-version-check --quiet --no-deps --only-binary=:all: \
            -r "$DEPS/requirements.txt" -d "$dir/wheels.new" </dev/null
        swap_in "$dir/wheels.new" "$dir/wheels"
        cp "$DEPS/requirements.txt" "$dir/requirements.txt"
        say "wheels for uvx downloaded ($(since "$t"))"
    fi

    chmod -R a+rX "$dir"
    check_as_nobody "$dir"

    {
        printf '%s\n' "$hash"
        printf '# mcp-warden test dependencies, installed %s by %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROOT/install.sh"
    } >"$stamp.tmp"
    chmod a+r "$stamp.tmp"
    mv -f "$stamp.tmp" "$stamp"
    say "test dependencies installed in $dir ($(since "$t0"))"
    say "  node:         $dir/node/node_modules/.bin/{mcp-server-everything,mcp-server-filesystem,mcp-server-memory},"
    say "                $dir/node/node_modules/@modelcontextprotocol/{client,server} (the TypeScript SDK)"
    say "  python:       $dir/venv/bin/{python,mcp-server-time,mcp-server-git,uvx}, wheels in $dir/wheels"
    say "  python mcp 1: $dir/venv-mcp1/bin/python (legacy-era SDK)"
}

case "${1:-}" in
    "")
        install_binary
        ;;
    --test-deps)
        [[ $# -le 2 ]] || {
            usage >&2
            exit 2
        }
        install_test_deps "${2:-${MCP_WARDEN_TEST_PREFIX:-$DEFAULT_TEST_PREFIX}}"
        ;;
    -h | --help)
        usage
        ;;
    *)
        usage >&2
        exit 2
        ;;
esac
