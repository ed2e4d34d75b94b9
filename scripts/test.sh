#!/usr/bin/env bash
# The full test suite, from a fresh Debian 12 machine (as root): bootstrap, then pytest.
# The integration tests bring the sandbox cluster up themselves (cesres-ctl sandbox up).
# Extra arguments go to pytest, e.g.  scripts/test.sh -m "not sandbox"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh
exec python -m pytest "$@"
