#!/bin/sh
# Writes trace.csv: one plausible hour of a job queue's length, read every 5 seconds, for
# `scalebus simulate` (see policy.yaml). Quiet at first, a burst at 10 minutes, the nightly batch
# at 30 minutes, and a short spike at 48 minutes. The noise comes from a Park-Miller generator
# written out here (not awk's rand(), which differs between awks), so every awk writes the same
# file:
#
#   sh examples/simulate/make-trace.sh > examples/simulate/trace.csv
set -eu
awk 'function noise() { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
BEGIN {
  seed = 42
  print "time_s,trigger,value"
  q = 0
  for (t = 0; t < 3600; t += 5) {
    rate = 4                                  # jobs arriving per second, quiet hours
    if (t >= 600 && t < 840) rate = 30        # a burst
    if (t >= 1800 && t < 2160) rate = 70      # the nightly batch
    if (t >= 2880 && t < 2940) rate = 110     # a short spike
    arrived = rate * 5 * (0.7 + 0.6 * noise())
    # What the fleet of the day drained: a steady 3.5 jobs/s, plus more as the queue grew and
    # the old autoscaler caught up with it.
    served = 5 * (3.5 + q / 40)
    q += arrived - served
    if (q < 0) q = 0
    printf "%d,queue,%d\n", t, q
  }
}'
