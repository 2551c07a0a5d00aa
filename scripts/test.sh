#!/bin/bash
# The whole test suite, with the same self-setup as up.sh: unit tests (no
# engine), then end-to-end tests against the real engine and real images.
#
# The e2e tests share the engine with whatever else runs on it: they use the
# images built here under their own namespace (STACKYARD_E2E_NAMESPACE, default
# stackyard-e2e) with their own build work dir, and touch only the containers,
# volumes and tags they create.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-host.sh"
cd "$REPO"
mkdir -p artifacts
export STACKYARD_E2E_NAMESPACE="${STACKYARD_E2E_NAMESPACE:-stackyard-e2e}"
# the e2e tests need the images: build them (cached builds take seconds)
stackyard build --namespace "$STACKYARD_E2E_NAMESPACE" \
    --work-dir "${STACKYARD_WORK_DIR:-/var/lib/stackyard/e2e-build}" \
    --summary-file artifacts/build-summary.json
python -m pytest -ra --durations=40 -p no:cacheprovider tests/unit tests/e2e "$@"
