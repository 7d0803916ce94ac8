#!/usr/bin/env python3
"""Summarise a bench/qemu/run.sh result directory.

Reads DIR/samples.tsv and DIR/meta.tsv; writes DIR/table.txt,
DIR/results.json and (with gnuplot) DIR/speedup.png; prints the table.

Per workload, each configuration's time is the median of its rounds
(in-guest seconds, or the program's own time under user mode):
  A       btmmu off          B      btmmu on        U   qemu-i386 user mode
  speedup        = A / B     (> 1: B is faster)
  user_speedup   = A / U     (the limit: direct memory access, no SoftMMU)
  limit_fraction = (A/B - 1) / (A/U - 1)
                   share of the possible gain that B reaches: 0 = no gain,
                   1 = as fast as user mode; undefined (null) when
                   A/U - 1 < 0.05 (no headroom to measure)
  spread         = largest (max - min) / median over A, B and U, in percent:
                   how noisy the rounds were
  *_cpu          = the same from host CPU time (user + system of the QEMU
                   process); for A and B minus the median CPU time of a
                   boot-only run of the same configuration. Less sensitive to
                   other load on the host than the in-guest (wall) times.
                   Null when A's or B's remaining CPU time is under 1 s.
Geometric means are taken over the workloads; the geomean limit_fraction is
computed from the geomean speedups. Exit status 1 when checksums disagree.
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys

MIN_HEADROOM = 0.05
# The targets: geomean A/B over the memory-bound workloads, every
# workload's A/B (the fork-heavy ones too), and boot to /init.
MEMORY_BOUND = ("ptrchase", "randrmw", "qsort", "seqcopy", "lzcomp")
TARGET_GEOMEAN = 1.6
TARGET_FLOOR = 0.95
TARGET_BOOT = 1.0
MIN_CPU_WORK = 1.0  # seconds: below this the boot-run subtraction dominates


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fraction(speedup, user_speedup):
    if speedup is None or user_speedup is None or user_speedup - 1 < MIN_HEADROOM:
        return None
    return (speedup - 1) / (user_speedup - 1)


def fmt(x, spec="{:.3f}"):
    return "-" if x is None else spec.format(x)


def main(d):
    meta = {}
    with open(os.path.join(d, "meta.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            meta[k] = v
    samples = []
    with open(os.path.join(d, "samples.tsv")) as f:
        next(f)
        for line in f:
            kind, cfg, rnd, name, secs, checksum = line.rstrip("\n").split("\t")
            if secs:
                samples.append((kind, cfg, int(rnd), name, float(secs), checksum))

    order = []
    for kind, _, _, name, _, _ in samples:
        if kind in ("system", "user") and name not in order:
            order.append(name)
    problems = []
    rows = []
    for name in order:
        row = {"workload": name}
        sums = set()
        for cfg, kind in (("A", "system"), ("B", "system"), ("U", "user")):
            xs = [s for s in samples if s[0] == kind and s[1] == cfg and s[3] == name]
            times = [s[4] for s in xs]
            row[cfg] = {
                "seconds": times,
                "median": statistics.median(times) if times else None,
                "min": min(times) if times else None,
                "max": max(times) if times else None,
            }
            cs = {s[5] for s in xs}
            row[cfg]["checksums"] = sorted(cs)
            sums |= cs
        if len(sums) > 1:
            problems.append(f"{name}: checksums differ: {sorted(sums)}")
        row["checksums_agree"] = len(sums) <= 1
        a, b, u = row["A"]["median"], row["B"]["median"], row["U"]["median"]
        row["speedup"] = a / b if a and b else None
        row["user_speedup"] = a / u if a and u else None
        row["limit_fraction"] = fraction(row["speedup"], row["user_speedup"])
        row["speedup_ratio"] = row["speedup"] / row["user_speedup"] if row["speedup"] and row["user_speedup"] else None
        spreads = [(row[c]["max"] - row[c]["min"]) / row[c]["median"] for c in ("A", "B", "U") if row[c]["median"]]
        row["spread_pct"] = 100 * max(spreads) if spreads else None
        cpu = {}
        for cfg, kind in (("A", "system_cpu"), ("B", "system_cpu"), ("U", "user_cpu")):
            xs = [s[4] for s in samples if s[0] == kind and s[1] == cfg and s[3] == name]
            med = statistics.median(xs) if xs else None
            boot = [s[4] for s in samples if s[0] == "boot_cpu" and s[1] == cfg]
            if med is not None and boot:
                med -= statistics.median(boot)
            cpu[cfg] = {"seconds": xs, "work_seconds": med}
        row["cpu"] = cpu
        ac, bc, uc = cpu["A"]["work_seconds"], cpu["B"]["work_seconds"], cpu["U"]["work_seconds"]
        ok = ac is not None and bc is not None and min(ac, bc) >= MIN_CPU_WORK
        row["speedup_cpu"] = ac / bc if ok else None
        row["user_speedup_cpu"] = ac / uc if ok and uc else None
        row["limit_fraction_cpu"] = fraction(row["speedup_cpu"], row["user_speedup_cpu"])
        rows.append(row)

    gm = {
        "A": geomean([r["A"]["median"] for r in rows]),
        "B": geomean([r["B"]["median"] for r in rows]),
        "U": geomean([r["U"]["median"] for r in rows]),
        "speedup": geomean([r["speedup"] for r in rows]),
        "user_speedup": geomean([r["user_speedup"] for r in rows]),
        # over the workloads that have CPU ratios (named in cpu_workloads)
        "speedup_cpu": geomean([r["speedup_cpu"] for r in rows]),
        "user_speedup_cpu": geomean([r["user_speedup_cpu"] for r in rows]),
        "cpu_workloads": [r["workload"] for r in rows if r["speedup_cpu"]],
    }
    gm["limit_fraction"] = fraction(gm["speedup"], gm["user_speedup"])
    gm["limit_fraction_cpu"] = fraction(gm["speedup_cpu"], gm["user_speedup_cpu"])

    mb = [r for r in rows if r["workload"] in MEMORY_BOUND]
    low = min(rows, key=lambda r: r["speedup"] or 0) if rows else None
    targets = {
        "memory_bound_workloads": [r["workload"] for r in mb],
        "memory_bound_geomean": geomean([r["speedup"] for r in mb]) if mb else None,
        "memory_bound_geomean_target": TARGET_GEOMEAN,
        "lowest_workload": low["workload"] if low else None,
        "lowest_speedup": low["speedup"] if low else None,
        "lowest_speedup_target": TARGET_FLOOR,
        "boot_target": TARGET_BOOT,
    }

    boot = {}
    for cfg in ("A", "B"):
        for metric in ("boot_to_init", "guest_uptime_at_init"):
            xs = [s[4] for s in samples if s[0] == "boot" and s[1] == cfg and s[3] == metric]
            boot.setdefault(cfg, {})[metric] = {"seconds": xs, "median": statistics.median(xs) if xs else None}
    ba, bb = boot["A"]["boot_to_init"]["median"], boot["B"]["boot_to_init"]["median"]
    boot["speedup"] = ba / bb if ba and bb else None
    for cfg in ("A", "B"):
        xs = [s[4] for s in samples if s[0] == "boot_cpu" and s[1] == cfg]
        boot[cfg]["qemu_cpu"] = {"seconds": xs, "median": statistics.median(xs) if xs else None}

    lines = []
    lines.append(f"{meta.get('qemu_version', '?')} ({meta.get('qemu')}), smp {meta.get('smp')}, size {meta.get('size')}, "
                 f"median of {meta.get('rounds')} rounds, kernel {meta.get('kernel')}")
    a_qemu = meta.get('qemu_a')
    a_bin = f"{a_qemu} " if a_qemu and a_qemu != meta.get('qemu') else ""
    lines.append(f"A: {a_bin}{meta.get('a_args')}")
    lines.append(f"B: {meta.get('b_args')}")
    lines.append(f"U: {meta.get('user_qemu')} ({meta.get('user_qemu_version', '-')})")
    lines.append(f"host load average: start {meta.get('loadavg_start')}, end {meta.get('loadavg_end')}")
    lines.append("")
    hdr = (f"{'workload':<11}{'A s':>9}{'B s':>9}{'A/B':>8}{'user s':>9}{'A/user':>8}{'limit':>8}"
           f"{'spread':>8}{'A/B cpu':>9}{'A/U cpu':>9}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for r in rows:
        lines.append(f"{r['workload']:<11}{fmt(r['A']['median']):>9}{fmt(r['B']['median']):>9}{fmt(r['speedup']):>8}"
                     f"{fmt(r['U']['median']):>9}{fmt(r['user_speedup']):>8}{fmt(r['limit_fraction'], '{:.2f}'):>8}"
                     f"{fmt(r['spread_pct'], '{:.0f}%'):>8}{fmt(r['speedup_cpu']):>9}{fmt(r['user_speedup_cpu']):>9}")
    lines.append("-" * len(hdr))
    lines.append(f"{'geomean':<11}{fmt(gm['A']):>9}{fmt(gm['B']):>9}{fmt(gm['speedup']):>8}"
                 f"{fmt(gm['U']):>9}{fmt(gm['user_speedup']):>8}{fmt(gm['limit_fraction'], '{:.2f}'):>8}"
                 f"{'':>8}{fmt(gm['speedup_cpu']):>9}{fmt(gm['user_speedup_cpu']):>9}")
    lines.append("")
    lines.append("A/B = speedup of B over A; A/user = speedup of user mode over A (the limit);")
    lines.append(f"limit = (A/B - 1) / (A/user - 1), the share of the possible gain reached (- when A/user - 1 < {MIN_HEADROOM}).")
    lines.append("spread = largest (max-min)/median over the rounds of A, B, user; cpu columns: from host CPU time")
    lines.append(f"(QEMU user+sys, A and B minus a boot-only run; - when under {MIN_CPU_WORK:g} s), less sensitive to other load on the host;")
    lines.append(f"their geomean covers {len(gm['cpu_workloads'])} of {len(rows)} workloads ({', '.join(gm['cpu_workloads']) or 'none'}).")
    lines.append(f"boot to /init (host wall clock, median): A {fmt(ba)} s, B {fmt(bb)} s, A/B {fmt(boot['speedup'])}; "
                 f"guest uptime at /init: A {fmt(boot['A']['guest_uptime_at_init']['median'], '{:.2f}')} s, "
                 f"B {fmt(boot['B']['guest_uptime_at_init']['median'], '{:.2f}')} s")
    targets["boot_speedup"] = boot["speedup"]

    def verdict(x, target):
        return "-" if x is None else ("met" if x >= target else f"missed by {100 * (1 - x / target):.0f}%")

    lines.append("")
    lines.append(f"targets: memory-bound geomean A/B ({', '.join(targets['memory_bound_workloads'])}) "
                 f"{fmt(targets['memory_bound_geomean'])}, target {TARGET_GEOMEAN}: "
                 f"{verdict(targets['memory_bound_geomean'], TARGET_GEOMEAN)}")
    lines.append(f"         lowest A/B {fmt(targets['lowest_speedup'])} ({targets['lowest_workload']}), "
                 f"target {TARGET_FLOOR}: {verdict(targets['lowest_speedup'], TARGET_FLOOR)}")
    lines.append(f"         boot A/B {fmt(boot['speedup'])}, target {TARGET_BOOT}: "
                 f"{verdict(boot['speedup'], TARGET_BOOT)}")
    for p in problems:
        lines.append(f"PROBLEM: {p}")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(d, "table.txt"), "w") as f:
        f.write(table)
    sys.stdout.write(table)

    result = {
        "meta": meta,
        "definitions": {
            "time": "median over rounds of the in-guest elapsed seconds (clock_gettime in the workload)",
            "speedup": "A/B",
            "user_speedup": "A/U",
            "limit_fraction": f"(A/B - 1)/(A/U - 1); null when A/U - 1 < {MIN_HEADROOM}",
            "speedup_ratio": "(A/B)/(A/U) = U/B",
            "spread_pct": "100 * max over A, B, U of (max - min) / median of the rounds",
            "cpu": "host CPU seconds (user+sys) of the QEMU process; work_seconds subtracts the median of the boot-only runs of the same configuration",
            "speedup_cpu": f"A_cpu/B_cpu (work_seconds); null when either is under {MIN_CPU_WORK} s",
            "user_speedup_cpu": "A_cpu/U_cpu",
            "geomean": "geometric mean over workloads; geomean limit_fraction from the geomean speedups",
        },
        "workloads": rows,
        "geomean": gm,
        "boot": boot,
        "targets": targets,
        "problems": problems,
    }
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    plot(d, rows, gm, meta)
    return 1 if problems else 0


def plot(d, rows, gm, meta):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("gnuplot not found: no speedup.png", file=sys.stderr)
        return
    dat = os.path.join(d, "speedup.dat")
    with open(dat, "w") as f:
        f.write("# workload\tB/A\tuser/A\n")
        for r in rows + [{"workload": "geomean", "speedup": gm["speedup"], "user_speedup": gm["user_speedup"]}]:
            f.write(f"{r['workload']}\t{r['speedup'] or 0:.4f}\t{r['user_speedup'] or 0:.4f}\n")
    has_user = any(r["user_speedup"] for r in rows)
    title = f"speedup over A (btmmu off), {meta.get('qemu_version', 'QEMU')}, smp {meta.get('smp')}"
    gp = f"""set terminal pngcairo size 1000,560 font "sans,10"
set output "{os.path.join(d, 'speedup.png')}"
set datafile separator "\\t"
set title "{title}"
set ylabel "speedup (A time / time)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set grid ytics
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
set arrow from graph 0, first {gm['speedup'] or 1:.4f} to graph 1, first {gm['speedup'] or 1:.4f} nohead dt 2 lw 1.5 lc rgb "#1f77b4"
plot "{dat}" using 2:xtic(1) title "B / A" lc rgb "#1f77b4"{', "" using 3 title "user mode qemu-i386 / A (limit)" lc rgb "#bbbbbb"' if has_user else ''}, \\
     1/0 with lines dt 2 lw 1.5 lc rgb "#1f77b4" title "geomean B / A = {gm['speedup'] or 0:.3f}"
"""
    with open(os.path.join(d, "speedup.gp"), "w") as f:
        f.write(gp)
    subprocess.run([gnuplot, os.path.join(d, "speedup.gp")], check=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULT_DIR")
    sys.exit(main(sys.argv[1]))
