#!/usr/bin/env bash
# Make sure the system programs Bulwark drives for real are present:
# HAProxy (data plane), PostgreSQL (store tests), iproute2 (network
# namespaces), wrk (benchmarks), openssl (Kubernetes test harness).
# As root on Debian they are installed with apt-get; otherwise the exact
# command to run is printed.
set -euo pipefail
declare -A need=(
  [haproxy]=haproxy
  [/usr/lib/postgresql/15/bin/postgres]=postgresql
  [ip]=iproute2
  [wrk]=wrk
  [pkill]=procps
  [chromium]=chromium # console end-to-end tests: Debian's build, never a downloaded browser
  [bpftrace]=bpftrace # eBPF node agent (observability): Debian's 0.17, tracepoints only
  [iptables]=iptables # packet-loss injection in the observability test when the kernel lacks sch_netem
  # Kubernetes test harness (its binaries, etcd included, come from scripts/kube/build.sh):
  # openssl for the clusters' PKI, setpriv (util-linux) for the parent-death signal that keeps
  # cluster processes from outliving a killed test.
  [openssl]=openssl
  [setpriv]=util-linux
  # The harness's real node (test/support/kube/node.ts): Debian's containerd 1.6 (+ ctr) and
  # runc, the bridge/host-local/loopback CNI plugins, busybox-static for the pause image.
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [busybox]=busybox-static
  [bwrap]=bubblewrap # the local instance sandbox (src/runtime/local/sandbox); setpriv drops to its uid
  [/usr/sbin/nginx]=nginx-light # a third-party workload of the adversarial fault suite (test/integration/chaos.test.ts)
)
missing=()
for bin in "${!need[@]}"; do
  if [[ "$bin" == /* ]]; then
    # Any PostgreSQL major version will do; other absolute paths must exist as named.
    [ -x "$bin" ] || { [[ "$bin" == */postgres ]] && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } || missing+=("${need[$bin]}")
  else
    command -v "$bin" >/dev/null 2>&1 || missing+=("${need[$bin]}")
  fi
done
# schemathesis for test/integration/schemathesis.test.ts (a pinned venv; a no-op once installed).
bash "$(dirname "$0")/schemathesis/install.sh"
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "prereqs: installing ${pkgs}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends ${pkgs} >/dev/null
else
  echo "prereqs: missing ${pkgs}; install them with: sudo apt-get install -y ${pkgs}" >&2
  exit 1
fi
