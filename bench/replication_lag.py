#!/usr/bin/python3
"""Replication lag between the write region and another region, sampled from outside.

Alternates serializable single-key Ranges at W and at R (each answers at its own durable
revision) for --seconds, then, for every sample at R, finds when W was first seen at that
revision: R's sample time minus that time is how long R trailed W. Run it while a load runs
at W (bench/regions.sh does not; it measures lag through watch events instead).

    bench/replication_lag.py --w 127.0.0.1:2379 --r 127.0.0.1:22379 --seconds 6

Prints one line: samples and the lag's p50/p90/p99/max in ms. The sampling itself costs
each side one RPC per round trip, so resolution is about two round trips (under a
millisecond idle on loopback).
"""

import argparse
import bisect
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "conformance"))

import grpc  # noqa: E402
from harness import rpc_pb2, rpc_pb2_grpc  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--w", required=True, help="host:port of the write region")
    ap.add_argument("--r", required=True, help="host:port of another region")
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    w = rpc_pb2_grpc.KVStub(grpc.insecure_channel(args.w))
    r = rpc_pb2_grpc.KVStub(grpc.insecure_channel(args.r))
    req = rpc_pb2.RangeRequest(key=b"\0", serializable=True)
    w_times, w_revs, r_samples = [], [], []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        rev = w.Range(req, timeout=5).header.revision
        w_times.append(time.monotonic())
        w_revs.append(rev)
        rev = r.Range(req, timeout=5).header.revision
        r_samples.append((time.monotonic(), rev))
    lags = []
    for t, rev in r_samples:
        i = bisect.bisect_left(w_revs, rev)
        if 0 < i < len(w_revs):  # W was seen below it before, and at or above it since
            lags.append((t - w_times[i]) * 1000.0)
    if not lags:
        print("no samples: did the revision move during the run?")
        return 1
    lags.sort()

    def q(p):
        return lags[min(len(lags) - 1, int(len(lags) * p))]

    print("samples %d lag ms p50 %.1f p90 %.1f p99 %.1f max %.1f"
          % (len(lags), q(0.5), q(0.9), q(0.99), lags[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
