#!/bin/sh
# A stand-in worker for the quickstart: says who it is, then idles until told to stop.
echo "worker $SCALEBUS_INSTANCE (pid $$) ready on 127.0.0.1:${PORT:-none}"
trap 'echo "worker $SCALEBUS_INSTANCE (pid $$) stopping"; exit 0' TERM INT
while :; do
  sleep 1 &
  wait $!
done
