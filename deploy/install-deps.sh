#!/usr/bin/env bash
# Everything Covey needs on a fresh Debian 12 host, as root: the Debian tools the data
# plane drives (deploy/debian-packages), then Covey itself and its Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $(grep -v '^#' deploy/debian-packages)
python3 -m pip install -q -e '.[test]'
