#!/usr/bin/python3
"""Differential test of geoetcd's HPACK decoder (gateway/h2/hpack.cc) against an independent
encoder, python3-hpack: random header lists such as gRPC clients send, with the dynamic
table in use, Huffman on and off, never-indexed fields and table size changes, decoded by
tests/gateway/hpack_decode_tool. Every field must come back in order and the decoder's table
size must equal the encoder's after every block (the two tables stay in step).

usage: hpack_differential_test.py <hpack_decode_tool> [first seed] [seeds] [blocks per seed]
"""
import random
import struct
import subprocess
import sys

import hpack

NAMES = [":path", ":method", ":scheme", ":authority", "te", "content-type", "user-agent",
         "grpc-timeout", "grpc-accept-encoding", "x-custom", "geoetcd-session", "authorization"]


def value(rng):
    k = rng.random()
    if k < 0.3:
        return "%dm" % rng.randrange(1, 30000)  # grpc-timeout: changes from call to call
    if k < 0.6:
        return "/etcdserverpb.KV/" + rng.choice(["Put", "Range", "Txn", "DeleteRange"])
    size = rng.randrange(0, rng.choice([5, 50, 400, 3000]))  # up to beyond the table
    return "".join(rng.choice("abcdefghij0123456789-_/%") for _ in range(size))


def run_seed(tool, seed, blocks):
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    proc = subprocess.Popen([tool], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for i in range(blocks):
            if rng.random() < 0.02:
                encoder.header_table_size = rng.choice([0, 100, 512, 1024, 4096])
            fields = [(rng.choice(NAMES), value(rng)) for _ in range(rng.randrange(1, 12))]
            never = rng.random() < 0.1
            block = encoder.encode([(n, v, True) for n, v in fields] if never else fields,
                                   huffman=rng.random() < 0.5)
            proc.stdin.write(struct.pack(">I", len(block)) + block)
            proc.stdin.flush()
            head = proc.stdout.readline().decode().split()
            if not head or head[0] != "OK":
                return "seed %d block %d: decoder said %s" % (seed, i, " ".join(head))
            count, table_size = int(head[1]), int(head[2])
            got = [tuple(proc.stdout.readline().decode().rstrip("\n").split("\t", 1))
                   for _ in range(count)]
            if got != fields:
                return "seed %d block %d: decoded %r, encoded %r" % (seed, i, got, fields)
            # python3-hpack keeps the size in a private field; it is the RFC 7541 4.1 size.
            if table_size != encoder.header_table._current_size:
                return "seed %d block %d: table size %d, encoder's %d" % (
                    seed, i, table_size, encoder.header_table._current_size)
    finally:
        proc.stdin.close()
        proc.wait()
    return None


def main():
    tool = sys.argv[1]
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    blocks = int(sys.argv[4]) if len(sys.argv) > 4 else 3000
    for seed in range(first, first + seeds):
        problem = run_seed(tool, seed, blocks)
        if problem:
            print("hpack_differential: FAIL " + problem)
            return 1
        print("hpack_differential: seed %d ok (%d blocks)" % (seed, blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
