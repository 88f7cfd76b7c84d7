#!/usr/bin/env bash
# Everything Covey needs on a fresh Debian 12 host, as root: the Debian tools
# the data plane drives, then Covey itself and its Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    iproute2 nftables conntrack runc tini skopeo umoci busybox-static docker-registry
python3 -m pip install -q -e '.[test]'
