#!/usr/bin/env python3
"""Prints the criterion results under target/criterion as Markdown tables:
median time per iteration, throughput where the bench set one, and for the
ESP groups the ratio of encap/decap to the bare primitives.

    cargo bench -p ipsec-benches && python3 benches/summarize.py
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def median_ns(path):
    with open(os.path.join(path, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"]


def fmt_ns(ns):
    return "%.0f ns" % ns if ns < 10_000 else "%.1f us" % (ns / 1000)


rows = {}
for dirpath, dirnames, filenames in os.walk(root):
    if os.path.basename(dirpath) == "new" and "estimates.json" in filenames:
        bench = os.path.dirname(dirpath)
        rel = os.path.relpath(bench, root)
        if rel.split(os.sep)[-1] == "report":
            continue
        rows[rel] = median_ns(bench)

esp = {}
other = []
for rel, ns in sorted(rows.items()):
    parts = rel.split(os.sep)
    # criterion turns the group "esp/ALG" into the folder "esp_ALG".
    if parts[0].split("_")[0] in ("esp", "ah") and len(parts) == 3:
        alg, kind, size = parts[0].replace("_", " ", 1), parts[1], parts[2]
        esp.setdefault((alg, int(size)), {})[kind] = ns
    else:
        other.append((rel, ns))

if esp:
    print("| algorithm | size (B) | encap | decap | bare seal | bare open | encap/bare | decap/bare | encap Gbit/s | encap Mpps | RustCrypto AES-GCM |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (alg, size), k in sorted(esp.items()):
        enc, dec, bare, bopen = k.get("encap"), k.get("decap"), k.get("bare"), k.get("bare_open")
        ratio = "%.2f" % (enc / bare) if enc and bare else "-"
        dratio = "%.2f" % (dec / bopen) if dec and bopen else "-"
        gbps = "%.1f" % (size * 8 / enc) if enc else "-"
        mpps = "%.2f" % (1000 / enc) if enc else "-"
        rc = k.get("rustcrypto_aes_gcm")
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            alg, size, fmt_ns(enc) if enc else "-", fmt_ns(dec) if dec else "-",
            fmt_ns(bare) if bare else "-", fmt_ns(bopen) if bopen else "-",
            ratio, dratio, gbps, mpps, fmt_ns(rc) if rc else ""))
    print()
if other:
    print("| benchmark | median |")
    print("|---|---:|")
    for rel, ns in other:
        print("| %s | %s |" % (rel.replace(os.sep, "/"), fmt_ns(ns)))
