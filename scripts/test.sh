#!/bin/bash
# The whole test suite, with the same self-setup as up.sh: unit tests (no
# engine), then end-to-end tests against the real engine and real images.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-host.sh"
cd "$REPO"
mkdir -p artifacts
# the e2e tests need the images: build them (cached builds take seconds)
stackyard build --work-dir "${STACKYARD_WORK_DIR:-/var/lib/stackyard/build}" --summary-file artifacts/build-summary.json
python -m pytest -ra -p no:cacheprovider tests/unit tests/e2e "$@"
