#!/bin/bash
# The service's entrypoint. WordPress's code is in the image (copied at build time, so a cold
# start copies nothing) and it was installed by the control plane's install job before the
# service was made public: this only sets the salts and starts Apache.
set -euo pipefail
# shellcheck source=aipress-salts.sh
source /usr/local/share/aipress/aipress-salts.sh
exec "$@"
