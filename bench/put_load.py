#!/usr/bin/python3
"""A deliberately simple durable-put load for quick side-by-side numbers (issue 2).

Runs N client threads, each with its own gRPC channel, issuing unary Puts with unique keys
for a fixed duration against an etcd v3 endpoint, and prints puts/s and latency
percentiles. The proper load generator is build/geoetcd-bench (bench/ issue); this one is
limited by Python (the GIL) at high client counts, which the output says.

usage: bench/put_load.py HOST:PORT CLIENTS SECONDS [VALUE_BYTES]
"""
import sys
import threading
import time

import grpc
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc


def main():
    target, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    value = b"v" * (int(sys.argv[4]) if len(sys.argv) > 4 else 256)
    latencies = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds
    errors = [0]

    def worker(i):
        stub = rpc_pb2_grpc.KVStub(grpc.insecure_channel(target))
        n = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                stub.Put(rpc_pb2.PutRequest(key=b"load/%d/%d" % (i, n), value=value), timeout=10)
            except grpc.RpcError:
                errors[0] += 1
                continue
            latencies[i].append(time.monotonic() - t0)
            n += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    all_lat = sorted(x for l in latencies for x in l)
    n = len(all_lat)
    pct = lambda p: all_lat[min(n - 1, int(p * n))] * 1000 if n else 0.0
    print("clients=%d puts=%d errors=%d seconds=%.1f puts_per_sec=%.0f p50_ms=%.2f p99_ms=%.2f"
          % (clients, n, errors[0], elapsed, n / elapsed, pct(0.5), pct(0.99)))


if __name__ == "__main__":
    main()
