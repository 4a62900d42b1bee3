#!/usr/bin/python3
"""A second, independent client for bench/compare.sh's `cost` runs: python3-etcd3 (grpcio,
the gRPC C core under Python) issuing blocking Put or Range calls from a few threads.

It exists to check that what geoetcd-bench measures about a server is the server's own cost
and not an artefact of geoetcd-bench's HTTP/2 client: compare.sh divides the server's CPU
time during this run by the requests it answered, and reports that next to the same figure
under geoetcd-bench. Python caps the rate (a few thousand calls/s); the per-request server
CPU is what matters, not the throughput.

usage: bench/py_client_load.py <host:port> <put|range-lin|range-ser> <seconds> <threads>
                               <key prefix> <key size> <key space> <value size>
Prints one JSON object: requests, errors, seconds, requests_per_sec, client, and for ranges
range_misses (ranges that found no key).
Keys are named as geoetcd-bench names them (the prefix, then the index zero-padded to
<key size> bytes), so a range reads keys a preload wrote.
"""
import json
import os
import random
import sys
import threading
import time

import etcd3


def key_name(prefix, key_size, index):
    digits = key_size - len(prefix)
    return prefix + str(index).zfill(digits)[-digits:] if digits > 0 else prefix


def main():
    if len(sys.argv) != 9:
        sys.stderr.write(__doc__)
        return 2
    endpoint, op, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    prefix, key_size, key_space, val_size = (sys.argv[5], int(sys.argv[6]), int(sys.argv[7]),
                                             int(sys.argv[8]))
    if op not in ("put", "range-lin", "range-ser") or seconds <= 0 or threads <= 0:
        sys.stderr.write("py_client_load: bad arguments\n")
        return 2
    host, _, port = endpoint.rpartition(":")
    value = os.urandom(val_size // 2 + 1).hex()[:val_size]
    counts = []
    lock = threading.Lock()
    start = time.monotonic()
    stop = start + seconds

    def worker(seed):
        client = etcd3.client(host=host, port=int(port))
        rng = random.Random(seed)
        done = errors = misses = 0
        while time.monotonic() < stop:
            key = key_name(prefix, key_size, rng.randrange(key_space))
            try:
                if op == "put":
                    client.put(key, value)
                else:
                    value_read, _ = client.get(key, serializable=(op == "range-ser"))
                    misses += value_read is None
                done += 1
            except Exception:  # any failed call counts; the run goes on
                errors += 1
        client.close()
        with lock:
            counts.append((done, errors, misses))

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - start
    requests = sum(c[0] for c in counts)
    result = {"requests": requests, "errors": sum(c[1] for c in counts),
              "seconds": elapsed, "requests_per_sec": requests / elapsed,
              "client": "python3-etcd3", "threads": threads, "op": op}
    if op != "put":
        result["range_misses"] = sum(c[2] for c in counts)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
