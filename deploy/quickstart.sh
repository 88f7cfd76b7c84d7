#!/usr/bin/env bash
# The quick start: a 3-host Covey swarm in the lab on this machine (root, Debian 12).
# Installs what it needs, starts coveyd on 3 namespace hosts, forms the swarm, prints
# `covey node ls`, then runs a registry on host1 with example images, deploys the example
# stack (deploy/examples/shop.yml) and asks its web front for the backend through the mesh.
# The lab stays up; the last lines say how to use and remove it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
exec python3 deploy/lab.py swarm --hosts "${HOSTS:-3}" --example
