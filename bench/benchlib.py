"""benchlib.py — what the benchmark scripts share: a process's CPU time and resident memory
read from /proc, the way shared/tools/cpu-per-req and idle-conns read them, and the median of
rounds."""
import os
import statistics

TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*pids):
    """utime + stime of the processes (all their threads), in seconds; gone ones count 0."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TCK
        except OSError:
            pass
    return total


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def medians(rounds):
    """{field: median over the rounds} of a list of {field: value} (None values left out)."""
    return {f: statistics.median(x[f] for x in rounds if x.get(f) is not None) for f in rounds[0]}
