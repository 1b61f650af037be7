# Sourced by scripts/bench and scripts/test: Debian's nginx, the floor of a proxy hop in the
# `proxy` benchmark (tests/bench/src/proxy/nginx.rs writes its config and runs it from a temp
# dir) and the load balancer of the scale test (tests/fixtures/src/nginx.rs).
# Extracted from the .deb into <repo>/.peers/nginx, with any shared library it needs that this
# machine lacks; nothing is installed, so no root is needed (except for `apt-get update` when
# the package lists are missing). Expects $repo to be set and log() defined (scripts/lib/tools.sh).

# Downloads Debian package $1 into the current directory, updating the package lists once if
# apt does not know it yet.
_nginx_apt_download() {
  apt-get download "$1" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get download "$1" >/dev/null; }
}

# Fetches nginx when missing and exports PORTCULLIS_NGINX: <repo>/.peers/nginx/nginx, a
# wrapper that puts the extracted libraries (if any) on LD_LIBRARY_PATH and execs the binary
# (same pid, so the benchmark measures nginx's own memory).
ensure_nginx() {
  local dir="$repo/.peers/nginx"
  local wrapper="$dir/nginx"
  if ! "$wrapper" -v >/dev/null 2>&1; then
    log "Fetching Debian's nginx into .peers/nginx"
    rm -rf "$dir"
    mkdir -p "$dir"
    local deps dep
    deps=$(cd "$dir" && _nginx_apt_download nginx && dpkg-deb -f nginx_*.deb Depends) || return 1
    (cd "$dir" && dpkg-deb -x nginx_*.deb . && rm -f nginx_*.deb) || return 1
    # Shared libraries this machine lacks: nginx's library dependencies that are not
    # installed (nginx-common holds only files under /etc; iproute2 is not needed to run).
    for dep in $(tr ',' '\n' <<<"$deps" | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | sort -u); do
      [[ "$dep" == lib* || "$dep" == zlib1g ]] || continue
      if ! dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'ok installed'; then
        log "Fetching $dep (needed by nginx, not installed here) into .peers/nginx"
        (cd "$dir" && _nginx_apt_download "$dep" && dpkg-deb -x "${dep}"_*.deb . && rm -f "${dep}"_*.deb) \
          || return 1
      fi
    done
    local libs env=""
    libs=$(find "$dir" -name '*.so*' -printf '%h\n' | sort -u | paste -sd: -)
    if [[ -n "$libs" ]]; then
      env="LD_LIBRARY_PATH=\"$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" "
    fi
    cat >"$wrapper" <<EOF
#!/bin/sh
# Written by scripts/lib/nginx.sh: Debian's nginx extracted here, with its missing libraries.
${env}exec "$dir/usr/sbin/nginx" "\$@"
EOF
    chmod +x "$wrapper"
    if ! "$wrapper" -v >/dev/null 2>&1; then
      LD_LIBRARY_PATH="$libs" ldd "$dir/usr/sbin/nginx" >&2 || true
      log "nginx from .peers/nginx does not run (libraries above marked 'not found' are missing)"
      return 1
    fi
  fi
  export PORTCULLIS_NGINX="$wrapper"
  "$PORTCULLIS_NGINX" -v
}
