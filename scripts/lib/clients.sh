# Sourced by scripts/test: the real MCP *clients* that the consent-flow end-to-end tests drive
# against the gateway's authorization server (test-fixtures' `clients` module), and the browser
# that walks the consent pages. Installs each when missing (pinned versions) and exports where
# it is; the fixtures read the PORTCULLIS_* variables and fail with a clear message when one is
# unset. Expects $repo to be set and log() defined (scripts/lib/tools.sh), and, for the
# Inspector, PORTCULLIS_NODE22 from ensure_conformance.

MCP_REMOTE_VERSION=0.15.1
PLAYWRIGHT_CORE_VERSION=1.65.1
MCP_INSPECTOR_VERSION=2.12.0

# Debian's chromium (156 on bookworm), driven headless by playwright-core; needs root for
# apt-get (the package lists are updated only when the first install fails). Exports
# PORTCULLIS_CHROMIUM.
ensure_chromium() {
  local chromium=/usr/bin/chromium
  if [[ ! -x "$chromium" ]]; then
    log "Installing Debian's chromium (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2; } \
      || return 1
  fi
  export PORTCULLIS_CHROMIUM="$chromium"
  # Only the version: the launcher's /etc/chromium.d/dev-shm check can print a shell warning.
  "$PORTCULLIS_CHROMIUM" --version >&2 2>/dev/null
}

# The version of the npm package $2 installed under the node_modules dir $1 ("" when missing).
_clients_npm_version() {
  node -p "require('$1/$2/package.json').version" 2>/dev/null || true
}

# The path of bin $3 of the npm package $2 under the node_modules dir $1, from its package.json.
_clients_npm_bin() {
  node -p "const p = require('$1/$2/package.json');
    require('path').join('$1/$2', typeof p.bin === 'string' ? p.bin : p.bin['$3'])"
}

# mcp-remote (Claude Desktop's stdio bridge; Node 20 is enough) and playwright-core (no browser
# download: it drives PORTCULLIS_CHROMIUM) into <repo>/.peers/clients, and the MCP Inspector CLI
# (needs Node >= 22.19: run it with PORTCULLIS_NODE22) into <repo>/.peers/inspector.
# Exports PORTCULLIS_MCP_REMOTE (its JS entry, run with node), PORTCULLIS_PLAYWRIGHT_DIR (the
# node_modules dir holding playwright-core, for NODE_PATH) and PORTCULLIS_INSPECTOR (its CLI
# entry JS, run with "$PORTCULLIS_NODE22").
ensure_mcp_clients() {
  local prefix="$repo/.peers/clients"
  local modules="$prefix/node_modules"
  if [[ "$(_clients_npm_version "$modules" mcp-remote)" != "$MCP_REMOTE_VERSION" \
    || "$(_clients_npm_version "$modules" playwright-core)" != "$PLAYWRIGHT_CORE_VERSION" ]]; then
    log "Installing mcp-remote $MCP_REMOTE_VERSION and playwright-core $PLAYWRIGHT_CORE_VERSION (npm) into .peers/clients"
    mkdir -p "$prefix"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$prefix" --no-audit --no-fund \
      --loglevel=error --save-exact \
      "mcp-remote@$MCP_REMOTE_VERSION" "playwright-core@$PLAYWRIGHT_CORE_VERSION" >&2 || return 1
  fi
  PORTCULLIS_MCP_REMOTE=$(_clients_npm_bin "$modules" mcp-remote mcp-remote) || return 1
  export PORTCULLIS_MCP_REMOTE
  export PORTCULLIS_PLAYWRIGHT_DIR="$modules"

  local inspector_prefix="$repo/.peers/inspector"
  local inspector_modules="$inspector_prefix/node_modules"
  if [[ "$(_clients_npm_version "$inspector_modules" @modelcontextprotocol/inspector)" != "$MCP_INSPECTOR_VERSION" ]]; then
    log "Installing the MCP Inspector $MCP_INSPECTOR_VERSION (npm) into .peers/inspector"
    mkdir -p "$inspector_prefix"
    npm install --prefix "$inspector_prefix" --no-audit --no-fund --loglevel=error --save-exact \
      "@modelcontextprotocol/inspector@$MCP_INSPECTOR_VERSION" >&2 || return 1
  fi
  PORTCULLIS_INSPECTOR=$(_clients_npm_bin "$inspector_modules" @modelcontextprotocol/inspector mcp-inspector) \
    || return 1
  export PORTCULLIS_INSPECTOR
  printf 'mcp-remote %s, playwright-core %s, inspector %s\n' \
    "$(_clients_npm_version "$modules" mcp-remote)" \
    "$(_clients_npm_version "$modules" playwright-core)" \
    "$(_clients_npm_version "$inspector_modules" @modelcontextprotocol/inspector)" >&2
}
