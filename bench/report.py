#!/usr/bin/python3
"""Turns the raw JSON of a bench/compare.sh run into a Markdown table and an SVG chart.

usage: bench/report.py <raw dir> <out.md> <out.svg>

<raw dir> holds facts.json, etcd/<run>.json, geoetcd/<run>.json (geoetcd-bench --json
output plus server_cpu_seconds), <server>/rss.json and floors/<run>.json. Standard library
only, so it runs anywhere compare.sh does.
"""
import json
import math
import os
import sys

# (run, label, target kind). Target kinds follow issue 5's goals, geoetcd / etcd:
#   latency1: single-client latency <= 1x (p50 and p99)
#   many:     throughput >= 2x and p99 <= 0.5x
#   tput2:    throughput >= 2x
#   watch:    event delivery p99 <= 1x
ROWS = [
    ("put-1", "put, 1 client", "latency1"),
    ("put-1000", "put, {conns} conns / {clients} clients", "many"),
    ("range-lin-1", "range linearizable, 1 client", "latency1"),
    ("range-lin-1000", "range linearizable, {clients} clients", "tput2"),
    ("range-ser-1", "range serializable, 1 client", "latency1"),
    ("range-ser-1000", "range serializable, {clients} clients", "tput2"),
    ("txn-put", "txn-put (CAS), {clients} clients", None),
    ("watch", "watch, {watchers} watchers: events/s, delivery latency", "watch"),
]
TARGET_TEXT = {
    "latency1": "p50, p99 ≤ 1×",
    "many": "≥ 2×, p99 ≤ 0.5×",
    "tput2": "≥ 2×",
    "watch": "p99 ≤ 1×",
    "rss": "≤ 1×",
    None: "",
}


# CPU of other processes (% of one core) above which a run is flagged as noisy.
NOISY_OTHER_PCT = 20


def other_cpu_pct(d):
    """CPU used by everything but the server and geoetcd-bench during a run, % of one core."""
    wall = d.get("process_wall_seconds")
    if not wall or d.get("machine_cpu_seconds") is None:
        return None
    other = (d["machine_cpu_seconds"] - d.get("server_cpu_seconds", 0) -
             d.get("process_cpu_seconds", 0))
    return max(0.0, 100 * other / wall)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ratio(a, b):
    return a / b if a and b else None


def fmt_ratio(r):
    return "—" if r is None else "%.2f×" % r


def fmt_num(v, digits=0):
    if v is None:
        return "—"
    return ("{:,.%df}" % digits).format(v)


def fmt_ms(v):
    if v is None:
        return "—"
    return "%.3g" % v if v < 10 else "%.0f" % v


def target_met(kind, tput_ratio, p50_ratio, p99_ratio):
    if kind is None:
        return ""
    checks = {
        "latency1": [p50_ratio is not None and p50_ratio <= 1,
                     p99_ratio is not None and p99_ratio <= 1],
        "many": [tput_ratio is not None and tput_ratio >= 2,
                 p99_ratio is not None and p99_ratio <= 0.5],
        "tput2": [tput_ratio is not None and tput_ratio >= 2],
        "watch": [p99_ratio is not None and p99_ratio <= 1],
    }[kind]
    return "yes" if all(checks) else "**no**"


def build_rows(raw, facts):
    settings = facts.get("settings", {})
    rows = []
    for run, label, kind in ROWS:
        e = load(os.path.join(raw, "etcd", run + ".json"))
        g = load(os.path.join(raw, "geoetcd", run + ".json"))
        if e is None and g is None:
            continue
        get = lambda d, k: d.get(k) if d else None
        tput = ratio(get(g, "requests_per_sec"), get(e, "requests_per_sec"))
        p50 = ratio(get(g, "p50_ms"), get(e, "p50_ms"))
        p99 = ratio(get(g, "p99_ms"), get(e, "p99_ms"))
        rows.append({
            "run": run, "label": label.format(**settings), "kind": kind, "etcd": e, "geo": g,
            "tput_ratio": tput, "p50_ratio": p50, "p99_ratio": p99,
            "met": target_met(kind, tput, p50, p99),
            "errors": (get(e, "errors"), get(g, "errors")),
        })
    return rows


def markdown(raw, md_path, facts, rows, svg_name):
    s = facts.get("settings", {})
    out = []
    title = "geoetcd vs etcd — %s" % facts.get("date", "")
    if facts.get("quick"):
        title += " (--quick: short runs, indicative only)"
    out.append("# " + title)
    out.append("")
    out.append("Same machine, same client (`geoetcd-bench`), one server at a time, fresh data "
               "dirs, both fsyncing every commit. Ratios are geoetcd ÷ etcd: above 1× is better "
               "for req/s, below 1× is better for latency and memory. Each run: %s after %s of "
               "warmup; values %s B. Raw JSON: `%s/`." % (
                   s.get("duration"), s.get("warmup"), s.get("val_size"),
                   os.path.relpath(raw, os.path.dirname(os.path.abspath(md_path)))))
    out.append("")
    noisy = []
    for r in rows:
        for server, d in (("etcd", r["etcd"]), ("geoetcd", r["geo"])):
            other = other_cpu_pct(d) if d else None
            if other is not None and other > NOISY_OTHER_PCT:
                noisy.append("%s %s (%.0f%%)" % (server, r["run"], other))
    if noisy:
        out.append("**Noisy:** other processes used more than %d%% of a core during %s; "
                   "rerun on a quiet machine before drawing conclusions." % (
                       NOISY_OTHER_PCT, ", ".join(noisy)))
        out.append("")
    out.append("| workload | etcd req/s | geoetcd req/s | ratio | etcd p50 ms | geoetcd p50 ms "
               "| etcd p99 ms | geoetcd p99 ms | p99 ratio | target | met | errors etcd/geo |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|")
    for r in rows:
        e, g = r["etcd"] or {}, r["geo"] or {}
        errors = "%s / %s" % tuple("—" if x is None else int(x) for x in r["errors"])
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["label"], fmt_num(e.get("requests_per_sec")), fmt_num(g.get("requests_per_sec")),
            fmt_ratio(r["tput_ratio"]), fmt_ms(e.get("p50_ms")), fmt_ms(g.get("p50_ms")),
            fmt_ms(e.get("p99_ms")), fmt_ms(g.get("p99_ms")), fmt_ratio(r["p99_ratio"]),
            TARGET_TEXT[r["kind"]], r["met"], errors))
    rss_e = load(os.path.join(raw, "etcd", "rss.json"))
    rss_g = load(os.path.join(raw, "geoetcd", "rss.json"))
    rss_ratio = None
    if rss_e or rss_g:
        mib = lambda d, k: d[k] / 1024 if d else None
        rss_ratio = ratio(mib(rss_g, "vmrss_kb"), mib(rss_e, "vmrss_kb"))
        keys = (rss_e or rss_g)["keys"]
        out.append("| RSS (VmRSS MiB) after %s keys of %s B | %s | %s | %s | | | | | | %s | %s | |" % (
            fmt_num(keys), (rss_e or rss_g)["val_size"], fmt_num(mib(rss_e, "vmrss_kb"), 1),
            fmt_num(mib(rss_g, "vmrss_kb"), 1), fmt_ratio(rss_ratio), TARGET_TEXT["rss"],
            "" if rss_ratio is None else ("yes" if rss_ratio <= 1 else "**no**")))
    out.append("")
    out.append("![geoetcd ÷ etcd](%s)" % svg_name)
    out.append("")

    # Details: everything a reader needs to judge what bound each number.
    out.append("## Runs in detail")
    out.append("")
    out.append("CPU as %% of one core (%s cores in all): the client's while measuring, the "
               "server's and everything else's (other processes on the machine) over the whole "
               "geoetcd-bench invocation. A client near 100%% x threads was the limit; other "
               "work above %d%% makes a run noisy." % (facts.get("nproc"), NOISY_OTHER_PCT))
    out.append("")
    out.append("| server | run | requests | errors | req/s | p50 | p90 | p99 | p99.9 | max ms "
               "| client CPU | server CPU | other CPU | notes |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    runs = [r for r, _, _ in ROWS] + ["preload", "rss-load"]
    for server in ("etcd", "geoetcd"):
        for run in runs:
            d = load(os.path.join(raw, server, run + ".json"))
            if d is None:
                continue
            secs = d.get("seconds") or 0
            pct = lambda v: "%.0f%%" % (100 * v / secs) if secs and v is not None else "—"
            wall = d.get("process_wall_seconds") or 0
            wpct = lambda v: "%.0f%%" % (100 * v / wall) if wall and v is not None else "—"
            other = other_cpu_pct(d)
            notes = []
            if d.get("errors_by_code"):
                notes.append(", ".join("%s %d" % kv for kv in d["errors_by_code"].items()))
            if d.get("range_misses"):
                notes.append("%d ranges found no key" % d["range_misses"])
            if run == "txn-put":
                notes.append("CAS ok %d, conflicts %d" % (d.get("cas_ok", 0),
                                                          d.get("cas_conflicts", 0)))
            if run == "watch":
                notes.append("%d puts at %.1f/s, put p99 %s ms, %d events missing, watchers "
                             "created in %.1f s" % (
                                 d.get("puts", 0), d.get("put_rate", 0),
                                 fmt_ms(d.get("put_p99_ms")), d.get("events_missing", 0),
                                 d.get("watch_create_seconds", 0)))
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                server, run, fmt_num(d.get("requests")), fmt_num(d.get("errors")),
                fmt_num(d.get("requests_per_sec")), fmt_ms(d.get("p50_ms")),
                fmt_ms(d.get("p90_ms")), fmt_ms(d.get("p99_ms")), fmt_ms(d.get("p999_ms")),
                fmt_ms(d.get("max_ms")), pct(d.get("client_cpu_seconds")),
                wpct(d.get("server_cpu_seconds")),
                "—" if other is None else ("**%.0f%%**" if other > NOISY_OTHER_PCT else "%.0f%%")
                % other, "; ".join(notes)))
    out.append("")
    if rss_e or rss_g:
        out.append("Memory after the load (MiB): ")
        out.append("")
        out.append("| server | VmRSS | RssAnon | RssFile | VmHWM (peak) |")
        out.append("|---|--:|--:|--:|--:|")
        for server, d in (("etcd", rss_e), ("geoetcd", rss_g)):
            if d:
                out.append("| %s | %.1f | %.1f | %.1f | %.1f |" % (
                    server, d["vmrss_kb"] / 1024, d["rss_anon_kb"] / 1024,
                    d["rss_file_kb"] / 1024, d["vmhwm_kb"] / 1024))
        out.append("")
        out.append("etcd's RssFile is mostly its memory-mapped bbolt file.")
        out.append("")

    cost_rows = []
    for op, label in (("put", "put"), ("range-lin", "range linearizable"),
                      ("range-ser", "range serializable")):
        for client, prefix in (("geoetcd-bench (h2)", "cost-bench-"),
                               ("python3-etcd3 (grpcio)", "cost-py-")):
            e = load(os.path.join(raw, "etcd", prefix + op + ".json"))
            g = load(os.path.join(raw, "geoetcd", prefix + op + ".json"))
            if e or g:
                cost_rows.append((label, client, e, g))
    if cost_rows:
        # The runs' own JSON says how they were driven.
        first = lambda kind: next((d for _, c, e, g in cost_rows if c.startswith(kind)
                                   for d in (e, g) if d), {})
        paced, py = first("geoetcd-bench"), first("python3")
        out.append("## Server CPU per request at a fixed rate, two clients")
        out.append("")
        out.append("Each server's CPU time during the run divided by the requests it answered, "
                   "at a moderate load: geoetcd-bench paced to %s req/s over %s connections, "
                   "and python3-etcd3 (a different gRPC stack) from %s blocking threads. If "
                   "geoetcd-bench's own HTTP/2 client made a server look slow, the second "
                   "client would not agree." % (
                       fmt_num(paced.get("rate")), paced.get("conns"), py.get("threads")))
        out.append("")
        out.append("| workload | client | etcd req/s | geoetcd req/s | etcd µs/req | "
                   "geoetcd µs/req | ratio | errors etcd/geo | ranges that missed etcd/geo |")
        out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
        us = lambda d: (1e6 * d["server_cpu_seconds"] / d["requests"]
                        if d and d.get("requests") and d.get("server_cpu_seconds") is not None
                        else None)
        for label, client, e, g in cost_rows:
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
                label, client, fmt_num((e or {}).get("requests_per_sec")),
                fmt_num((g or {}).get("requests_per_sec")), fmt_num(us(e)), fmt_num(us(g)),
                fmt_ratio(ratio(us(g), us(e))),
                fmt_num((e or {}).get("errors")), fmt_num((g or {}).get("errors")),
                fmt_num((e or {}).get("range_misses")), fmt_num((g or {}).get("range_misses"))))
        out.append("")

    floors = [
        ("rocksdb-1x1", "RocksDB synced WriteBatch, 1 writer, 1 key/batch"),
        ("rocksdb-16x1", "RocksDB synced WriteBatch, 16 writers, 1 key/batch"),
        ("rocksdb-1x100", "RocksDB synced WriteBatch, 1 writer, 100 keys/batch"),
        ("grpc-empty-1", "empty gRPC unary RPC, loopback, 1 client"),
        ("grpc-empty-1000", "empty gRPC unary RPC, loopback, %s conns / %s clients" % (
            s.get("conns"), s.get("clients"))),
    ]
    floor_rows = [(n, label, load(os.path.join(raw, "floors", n + ".json"))) for n, label in floors]
    if any(d for _, _, d in floor_rows):
        out.append("## Floors (same machine, same day)")
        out.append("")
        out.append("| floor | ops/s | keys/s | p50 ms | p99 ms | CPU (% of one core) |")
        out.append("|---|--:|--:|--:|--:|--:|")
        for name, label, d in floor_rows:
            if not d:
                continue
            secs = d.get("seconds") or 0
            keys = d.get("keys_per_sec")
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                label, fmt_num(d.get("requests_per_sec")), fmt_num(keys) if keys else "",
                fmt_ms(d.get("p50_ms")), fmt_ms(d.get("p99_ms")),
                "%.0f%%" % (100 * d["client_cpu_seconds"] / secs) if secs else "—"))
        out.append("")
        out.append("The gRPC floor's client and server share this process (and the cores).")
        out.append("")

    out.append("## Machine")
    out.append("")
    for key, label in (("nproc", "cores (nproc)"), ("cpu", "CPU"), ("memory_gib", "memory GiB"),
                       ("kernel", "kernel"), ("filesystem", "data filesystem"),
                       ("etcd_version", "etcd"), ("geoetcd_commit", "geoetcd commit")):
        v = facts.get(key)
        if isinstance(v, list):
            v = " ".join(v)
        out.append("- %s: %s" % (label, v))
    knobs = facts.get("knobs") or {}
    out.append("- settings: %s" % ", ".join("%s=%s" % kv for kv in sorted(s.items())))
    if knobs:
        out.append("- environment: %s" % " ".join("%s=%s" % kv for kv in sorted(knobs.items())))
    out.append("")
    out.append("Reproduce: `bench/compare.sh%s` (docs/performance.md)." % (
        " --quick" if facts.get("quick") else ""))
    out.append("")
    return "\n".join(out), rss_ratio


def svg_chart(rows, rss_ratio):
    """Horizontal bars on a log scale: geoetcd's advantage per workload (>1x is better)."""
    bars = []  # (label, [(value, colour, legend)])
    for r in rows:
        items = []
        # The watch writer's rate fixes its events/s; only its latency compares.
        if r["tput_ratio"] is not None and r["run"] != "watch":
            items.append((r["tput_ratio"], "#2b6cb0", "req/s"))
        if r["p99_ratio"]:
            items.append((1 / r["p99_ratio"], "#dd6b20", "p99"))
        bars.append((r["label"], items))
    if rss_ratio:
        bars.append(("RSS", [(1 / rss_ratio, "#38a169", "memory")]))
    lo, hi = -4.0, 4.0  # log2 range: 1/16x .. 16x
    label_w, plot_w, row_h, top = 330, 430, 34, 56
    width = label_w + plot_w + 60
    height = top + row_h * len(bars) + 40
    x_of = lambda v: label_w + (min(max(math.log2(v), lo), hi) - lo) / (hi - lo) * plot_w
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    p = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="12">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="15" font-weight="bold">geoetcd vs etcd: how many '
         'times better (log scale, &gt;1× = geoetcd better)</text>',
         '<rect x="10" y="30" width="10" height="10" fill="#2b6cb0"/>'
         '<text x="24" y="39">req/s ratio</text>',
         '<rect x="110" y="30" width="10" height="10" fill="#dd6b20"/>'
         '<text x="124" y="39">p99 latency (etcd ÷ geoetcd)</text>',
         '<rect x="320" y="30" width="10" height="10" fill="#38a169"/>'
         '<text x="334" y="39">memory (etcd ÷ geoetcd)</text>']
    for e in range(int(lo), int(hi) + 1):
        x = x_of(2.0 ** e)
        p.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (
            x, top - 6, x, top + row_h * len(bars), "#333" if e == 0 else "#ddd"))
        text = "%g×" % (2.0 ** e) if e >= 0 else "1/%d×" % (2 ** -e)
        p.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>' % (
            x, top + row_h * len(bars) + 16, text))
    x1 = x_of(1.0)
    for i, (label, items) in enumerate(bars):
        y = top + i * row_h
        p.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (
            label_w - 8, y + row_h / 2 + 4, esc(label)))
        bar_h = (row_h - 10) / max(1, len(items))
        for j, (v, colour, _) in enumerate(items):
            xv = x_of(v)
            by = y + 5 + j * bar_h
            p.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (
                min(x1, xv), by, max(1.0, abs(xv - x1)), bar_h - 1, colour))
            anchor, tx = ("start", max(x1, xv) + 4) if v >= 1 else ("end", min(x1, xv) - 4)
            p.append('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="10">%.2f×</text>' % (
                tx, by + bar_h - 3, anchor, v))
    p.append("</svg>")
    return "\n".join(p) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        sys.exit(2)
    raw, md_path, svg_path = sys.argv[1:]
    facts = load(os.path.join(raw, "facts.json")) or {}
    rows = build_rows(raw, facts)
    text, rss_ratio = markdown(raw, md_path, facts, rows, os.path.basename(svg_path))
    with open(md_path, "w") as f:
        f.write(text)
    with open(svg_path, "w") as f:
        f.write(svg_chart(rows, rss_ratio))


if __name__ == "__main__":
    main()
