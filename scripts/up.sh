#!/bin/bash
# The main job on a fresh Debian machine: install what is missing, make the base
# image, build the images, deploy the all-in-one cloud and print the openrc.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-host.sh"
stackyard up --configdir "${STACKYARD_CONFIGDIR:-/etc/kolla}" "$@"
echo
cat "${STACKYARD_CONFIGDIR:-/etc/kolla}/admin-openrc.sh"
