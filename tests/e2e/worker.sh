#!/bin/sh
# End-to-end test worker: records its pid, instance and port, then sleeps until stopped.
echo "$SCALEBUS_INSTANCE ${PORT:-} $$" > "$E2E_DIR/worker.$$"
exec sleep 600
