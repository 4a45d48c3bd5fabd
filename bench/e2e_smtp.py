#!/usr/bin/env python3
"""End-to-end SMTP benchmark for one rqmail instance (run by bench/e2e-smtp.sh).

    e2e_smtp.py INSTANCE_DIR BENCH_TOOLS_DIR

INSTANCE_DIR is an instance made by install/quickstart.sh --setup-only (not running); this
program starts rqmail-start and rqmail-tcpserver serving rqmail-smtpd on a free loopback
port, runs BENCH_TOOLS_DIR/smtp-load.py for every case (and once with MODE=mem), stops the
instance, then measures the disk with BENCH_TOOLS_DIR/fsync-limit/run.sh and prints the
comparison. It must run as the instance's user (the wrapper takes care of that as root).

Environment: N (2000), RUNS (3), CONCURRENCY (1,8,32), REUSE_AT (8), SIZE (4096),
MEM_CONNS (20), GENERATOR, FSYNC_RUNS (5), FSYNC_SECS (3), FSYNC_CHURN, DISK_FIRST (0),
SETTLE (2), TIMEOUT (120), TCPSERVER_OPTS ("-c 200 -b 64").
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_list(name, default):
    return [int(x) for x in re.split(r"[,\s]+", os.environ.get(name, default).strip()) if x]


def env_num(name, default, kind=int):
    return kind(os.environ.get(name, default))


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def settings(home):
    out = {}
    with open(os.path.join(home, "quickstart.settings")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


# ------------------------------------------------------------------------- processes

def proc_stat(pid):
    """(comm, ppid, own CPU ticks, reaped children's CPU ticks) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == pid:
                out.append(int(name))
    return sorted(out)


def cpu_of(pids):
    """Seconds of CPU per long-running process, its own plus its reaped children's."""
    out = {}
    for pid in pids:
        st = proc_stat(pid)
        if st:
            out[f"{st[0]}[{pid}]"] = (st[2] + st[3]) / CLK_TCK
    return out


def stop(proc, name):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        log(f"e2e-smtp: {name} did not stop on TERM; killing it")
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------- the queue

def count(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def queue_count(queue, d):
    return sum(count(os.path.join(queue, d, s)) for s in os.listdir(os.path.join(queue, d)))


def wait_drained(queue, timeout):
    """Waits until the queue holds no message (so clean's work is done too)."""
    deadline = time.monotonic() + timeout
    while queue_count(queue, "mess") or count(os.path.join(queue, "todo")):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class TodoSampler(threading.Thread):
    """Every 50 ms: the todo backlog, the largest kept."""

    def __init__(self, todo):
        super().__init__(daemon=True)
        self.todo = todo
        self.max_todo = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.max_todo = max(self.max_todo, count(self.todo))
            self.stop.wait(0.05)


# ------------------------------------------------------------------------- smtp-load

def parse_result(line):
    out = {}
    for field in line.split("\t")[1:]:
        k, _, v = field.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = None if v == "None" else v
    return out


def smtp_load(tools, extra):
    """Runs smtp-load.py with the environment plus `extra`; (RESULT dicts, output lines)."""
    env = dict(os.environ, **{k: str(v) for k, v in extra.items()})
    p = subprocess.Popen([sys.executable, os.path.join(tools, "smtp-load.py")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results, lines = [], []
    for line in p.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        if line.startswith("RESULT\t"):
            results.append(parse_result(line))
        else:
            log("    " + line)
    if p.wait() != 0:
        raise SystemExit(f"e2e-smtp: smtp-load.py failed with status {p.returncode}")
    return results, lines


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


# ------------------------------------------------------------------------- the disk

def disk_limits(tools, workdir, parallel, size):
    """{P: (qmail-queue files/s, maildir files/s)}, medians from fsync-limit."""
    runs = env_num("FSYNC_RUNS", "5")
    secs = env_num("FSYNC_SECS", "3", float)
    cmd = [os.path.join(tools, "fsync-limit", "run.sh"), "-d", workdir, "-r", str(runs),
           "-t", str(secs), "-s", str(size), "-j", ",".join(map(str, parallel)),
           "qmail-queue", "maildir"]
    churn = os.environ.get("FSYNC_CHURN", "")
    if churn:
        cmd[1:1] = ["-c", churn]
    log("e2e-smtp: disk reference:", " ".join(cmd))
    env = dict(os.environ, TMPDIR=workdir)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    res = {}
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "RESULT":
            res.setdefault(int(f[2]), {})[f[1]] = float(f[3])
        else:
            log("   ", line)
    return {p: (v["qmail-queue"], v["maildir"]) for p, v in res.items()}


# ------------------------------------------------------------------------- main

def start_instance(home):
    logf = open(os.path.join(home, "send.log"), "ab")
    start = subprocess.Popen([os.path.join(home, "bin", "rqmail-start")], cwd=home,
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    deadline = time.monotonic() + 10
    while b"status: local" not in open(os.path.join(home, "send.log"), "rb").read():
        if start.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"e2e-smtp: rqmail-start did not come up; see {home}/send.log")
        time.sleep(0.05)
    return start


def start_tcpserver(home):
    opts = os.environ.get("TCPSERVER_OPTS", "-c 200 -b 64").split()
    cmd = [os.path.join(home, "bin", "rqmail-tcpserver"), "-R", "-H", "-l", "0", *opts,
           "-1", "127.0.0.1", "0", os.path.join(home, "bin", "rqmail-smtpd")]
    log("e2e-smtp: " + " ".join(cmd))
    logf = open(os.path.join(home, "smtpd.log"), "ab")
    server = subprocess.Popen(cmd, cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=logf)
    port = server.stdout.readline().strip()
    if not port.isdigit():
        stop(server, "rqmail-tcpserver")
        raise SystemExit(f"e2e-smtp: rqmail-tcpserver printed no port; see {home}/smtpd.log")
    server.stdout.close()
    return server, int(port)


def main():
    home, tools = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    n = env_num("N", "2000")
    runs = env_num("RUNS", "3")
    size = env_num("SIZE", "4096")
    conc = env_list("CONCURRENCY", "1,8,32")
    reuse_at = env_list("REUSE_AT", "8")
    timeout = env_num("TIMEOUT", "120", float)
    disk_first = os.environ.get("DISK_FIRST", "0") == "1"
    st = settings(home)
    rcpt = f"{st['user']}@{st['domain']}"
    maildir = os.path.join(home, "home", st["user"], "Maildir")
    queue = os.path.join(home, "queue")
    scratch = os.path.join(home, "disk")
    os.makedirs(scratch, exist_ok=True)
    disk_p = sorted(set(conc) | set(reuse_at))

    disk = disk_limits(tools, scratch, disk_p, size) if disk_first else None

    start = start_instance(home)
    server = None
    cases, mem_lines, mem_result, generator = [], [], {}, "?"
    try:
        server, port = start_tcpserver(home)
        inst = [start.pid] + children(start.pid)
        log("e2e-smtp: instance processes:",
            ", ".join(f"{proc_stat(p)[0]}[{p}]" for p in inst + [server.pid]),
            f"; SMTP on 127.0.0.1:{port}")
        base = {
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "N": n, "RUNS": runs, "SIZE": size,
            "FROM": rcpt, "RCPT": rcpt, "MAILDIR": maildir, "CLEAN_MAILDIR": 1,
            "SERVER_PIDS": f"{server.pid} {start.pid}", "TIMEOUT": timeout,
            "SETTLE": os.environ.get("SETTLE", "2"),
        }
        plan = [(c, 0) for c in conc] + [(c, 1) for c in reuse_at]
        for c, reuse in plan:
            if not wait_drained(queue, timeout):
                raise SystemExit(f"e2e-smtp: the queue did not drain; see {home}/send.log")
            log(f"e2e-smtp: {runs} x {n} messages of {size} bytes, {c} connections,"
                f" REUSE={reuse} ...")
            cpu0 = cpu_of([server.pid] + inst)
            sampler = TodoSampler(os.path.join(queue, "todo"))
            sampler.start()
            results, lines = smtp_load(tools, dict(base, CONCURRENCY=c, REUSE=reuse))
            drained = wait_drained(queue, timeout)
            sampler.stop.set()
            sampler.join()
            cpu1 = cpu_of([server.pid] + inst)
            for line in lines:
                if line.startswith("== "):
                    generator = line.split()[1]
            sent = sum(r["ok"] for r in results)
            cases.append({
                "conc": c, "reuse": reuse, "runs": results, "sent": sent,
                "errors": sum(r["err"] for r in results),
                "delivered_all": all(r.get("e2e_rate") for r in results),
                "per_proc": {k: cpu1[k] - cpu0.get(k, 0) for k in cpu1},
                "max_todo": sampler.max_todo, "drained": drained,
            })
        wait_drained(queue, timeout)
        log(f"e2e-smtp: memory of {env_num('MEM_CONNS', '20')} idle sessions ...")
        mem_results, mem_lines = smtp_load(tools, dict(base, MODE="mem", CONCURRENCY=1, REUSE=0))
        mem_result = mem_results[0] if mem_results else {}
    finally:
        if server is not None:
            stop(server, "rqmail-tcpserver")
        stop(start, "rqmail-start")

    if not disk_first:
        disk = disk_limits(tools, scratch, disk_p, size)

    print()
    print(f"rqmail end to end over SMTP: {generator} client (smtp-load.py) -> rqmail-tcpserver"
          f" -> rqmail-smtpd -> rqmail-queue -> rqmail-send -> lspawn -> Maildir;"
          f" {size}-byte messages, {n} per run, median of {runs} runs")
    churn = os.environ.get("FSYNC_CHURN", "")
    print(f"disk limit: 1/(1/qmail-queue + 1/maildir) from fsync-limit at the same concurrency,"
          f" same run, {'before' if disk_first else 'after'} rqmail"
          f"{', with churn -c ' + churn if churn else ''}. CPU: server = tcpserver, smtpd,"
          f" rqmail-queue, send, lspawn, rspawn, clean and their children; machine = all"
          f" processes; gen = the load generator")
    print()
    hdr = (f"{'conc':>4} {'reuse':>5} {'accepted/s':>10} {'delivered/s':>11} {'disk limit/s':>12}"
           f" {'ratio':>6} {'CPU ms/msg':>10} {'machine ms':>10} {'gen ms':>6} {'max todo':>8}")
    print(hdr)
    print("-" * len(hdr))
    for case in cases:
        q, m = disk[case["conc"]]
        limit = 1 / (1 / q + 1 / m)
        rs = case["runs"]
        acc = median([r["accept_rate"] for r in rs])
        dlv = median([r.get("e2e_rate") for r in rs])
        ms = lambda key: median([1000 * r[key] / r["ok"] if r.get(key) is not None and r["ok"]  # noqa: E731
                                 else None for r in rs])
        cpu, mach, gen = ms("server_cpu_s"), ms("machine_cpu_s"), ms("gen_cpu_s")
        f = lambda v, w, p: f"{v:>{w}.{p}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
        print(f"{case['conc']:>4} {'yes' if case['reuse'] else 'no':>5} {f(acc, 10, 0)}"
              f" {f(dlv, 11, 0)} {limit:>12.0f} {f(dlv / limit if dlv else None, 6, 2)}"
              f" {f(cpu, 10, 2)} {f(mach, 10, 2)} {f(gen, 6, 2)} {case['max_todo']:>8}")
    print()
    print("idle SMTP sessions (after EHLO), MODE=mem:")
    for line in mem_lines:
        if not line.startswith(("RESULT", "==")):
            print("  " + line)
    print()
    print("details:")
    for case in cases:
        q, m = disk[case["conc"]]
        sent = case["sent"] or 1
        procs = ", ".join(f"{k} {v * 1e3 / sent:.2f}" for k, v in case["per_proc"].items())
        per_run = "; ".join(f"{r['accept_rate']:.0f}/{r['e2e_rate'] or 0:.0f}" for r in case["runs"])
        print(f"  conc {case['conc']} reuse {case['reuse']}: accepted/delivered msg/s per run"
              f" {per_run}; disk qmail-queue {q:.0f}/s maildir {m:.0f}/s; CPU ms/msg over the"
              f" case incl. queue drain: {procs}; errors {case['errors']:.0f};"
              f" all delivered {case['delivered_all']}; queue drained {case['drained']}")


if __name__ == "__main__":
    main()
