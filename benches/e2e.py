#!/usr/bin/env python3
"""End-to-end benchmark: cnbpkg against peers, measured in the same run.

Usage: benches/e2e.py [--quick] [--runs N] [--warmup N] [--only NAME,...] [--no-build]

Generates deterministic workloads (cached under $CNBPKG_BENCH_WORK or target/bench-work),
runs every pair of commands alternated (A B A B ...) after warm-up rounds, measures wall
time, user+sys CPU, peak RSS (GNU time) and output size, and prints a Markdown table of
medians and cnbpkg/peer ratios (median of per-round ratios). See benches/README.md.

Python 3 standard library only.
"""

import argparse
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

GEN_VERSION = 2  # bump when the generators change, to regenerate cached workloads
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20

# Tool -> Debian package providing it.
TOOLS = {
    "umoci": "umoci",
    "pigz": "pigz",
    "zstd": "zstd",
    "gzip": "gzip",
    "tar": "tar",
    "sha256sum": "coreutils",
    "/usr/bin/time": "time",
    "bash": "bash",
}
PUSH_TOOLS = {"docker-registry": "docker-registry", "skopeo": "skopeo"}

# Workload sizes: (full, quick)
SIZES = {
    "big_bytes": (300 * 1000 * 1000, 30 * 1000 * 1000),
    "small_files": (40000, 4000),
    "huge_bytes": (2 * 1024 * MiB, 256 * MiB),
    "real_bytes": (300 * 1000 * 1000, 30 * 1000 * 1000),
}

# Where the real-binaries workload copies executables and libraries from (this machine's own).
REAL_SOURCES = ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def die(msg):
    print(f"e2e: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# ----------------------------------------------------------------------------------------------
# Deterministic data generators
# ----------------------------------------------------------------------------------------------


def prng_bytes(seed: str, n: int) -> bytes:
    """n incompressible bytes, a function of seed only (SHAKE-256 in 1 MiB chunks)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.shake_256(f"{seed}/{i}".encode()).digest(min(MiB, n - len(out)))
        i += 1
    return bytes(out)


def _skew_table() -> bytes:
    # Map uniform bytes onto a skewed alphabet of byte values common in x86-64 machine code.
    syms = [0x00, 0xFF, 0x48, 0x89, 0x8B, 0xE8, 0x0F, 0x24, 0x44, 0x45, 0x85, 0xC0,
            0x41, 0x01, 0x10, 0x83, 0x74, 0x75, 0x20, 0xC3, 0x90, 0x31, 0x5D, 0x08]
    weights = [40, 20, 12, 10, 8, 7, 6, 5, 5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    total = sum(weights)
    tab = bytearray()
    for s, w in zip(syms, weights):
        tab += bytes([s]) * round(256 * w / total)
    return bytes((tab + bytes(256))[:256])


SKEW = _skew_table()


def binary_like(seed: str, n: int) -> bytes:
    """Compressible, binary-looking bytes (gzip -6 ratio about 0.42): 4 KiB blocks that are
    patched copies of a few nearby templates, low-entropy code-like runs, zero padding and
    a share of random bytes."""
    rng = random.Random(seed)
    raw = prng_bytes(seed + "/raw", max(n, 6 * 4096 + 4096))
    templates = [raw[i * 4096:(i + 1) * 4096].translate(SKEW) for i in range(6)]
    out = bytearray()
    pos = 0
    span = max(1, len(raw) - 4096)
    while len(out) < n:
        r = rng.random()
        blk = raw[pos:pos + 4096]
        pos = (pos + 4099) % span
        if r < 0.60:
            t = bytearray(templates[rng.randrange(6)])
            o = rng.randrange(4096 - 96)
            t[o:o + 96] = blk[:96]
            out += t
        elif r < 0.80:
            out += blk.translate(SKEW)
        elif r < 0.90:
            out += bytes(4096)
        else:
            out += blk
    return bytes(out[:n])


WORDS = ("self return if else for while def fn let mut const static struct impl trait pub use "
         "import from package func var type interface class public private int string bool "
         "true false nil None null err error ctx config value result buffer reader writer "
         "layer digest target index manifest build detect path name version len append map "
         "range match Some Ok Err new open close read write flush hash sum size offset").split()
LINE_SHAPES = [
    "{i}{a} = {b}({c}, {d})",
    "{i}if {a} != {b} {{",
    "{i}return {a}.{b}({c})",
    "{i}// {a} {b} {c} {d} {e} {f}",
    "{i}for {a} in {b}.{c}() {{",
    "{i}}}",
    "{i}{a}.{b} = {c}_{d}{n}",
    "{i}def {a}_{b}(self, {c}, {d}={n}):",
    "{i}let {a}: {B} = {c}::{d}(&{e})?;",
    "{i}\"{a} {b} {c}\": {n},",
    "",
]


def text_line_pool(seed: str, count: int):
    rng = random.Random(seed)
    pool = []
    for _ in range(count):
        shape = rng.choice(LINE_SHAPES)
        w = [rng.choice(WORDS) for _ in range(6)]
        pool.append(shape.format(
            i="    " * rng.choice((0, 1, 1, 2, 2, 3)), a=w[0], b=w[1], c=w[2], d=w[3], e=w[4],
            f=w[5], B=w[1].capitalize(), n=rng.randrange(100000)))
    return pool


def source_like(rng: random.Random, pool, n: int, name: str) -> bytes:
    lines = [f"// {name}: generated benchmark source", f"// id {rng.getrandbits(64):016x}", ""]
    size = sum(len(s) + 1 for s in lines)
    while size < n:
        chunk = rng.choices(pool, k=64)
        lines += chunk
        size += sum(len(s) + 1 for s in chunk)
    return ("\n".join(lines).encode())[:n]


BIN_SCRIPT = b"#!/bin/sh\nset -eu\necho benchmark\n"


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def buildpack_toml(bp_id, targets):
    s = f'api = "0.10"\n\n[buildpack]\nid = "{bp_id}"\nversion = "1.0.0"\nname = "{bp_id}"\n'
    for os_, arch in targets:
        s += f'\n[[targets]]\nos = "{os_}"\narch = "{arch}"\n'
    return s.encode()


def gen_binary_tree(root, total, seed):
    """A buildpack-like tree of `total` bytes: 1/3 incompressible archives, 1/3 large
    binary-like libraries, 1/3 binary-like executables of 1-3 % each, plus some docs."""
    rng = random.Random(seed)
    write(f"{root}/bin/build", BIN_SCRIPT, 0o755)
    write(f"{root}/bin/detect", BIN_SCRIPT, 0o755)
    third = total // 3
    for i in range(4):
        write(f"{root}/vendor/deps-{i}.tgz", prng_bytes(f"{seed}/vendor/{i}", third // 4))
    for i in range(6):
        write(f"{root}/lib/libbench-{i}.so.1", binary_like(f"{seed}/lib/{i}", third // 6), 0o755)
    left, i = third, 0
    while left > 0:
        n = min(left, int(third / 40 * rng.uniform(0.5, 1.5)))
        write(f"{root}/bin/tool-{i:02d}", binary_like(f"{seed}/tool/{i}", n), 0o755)
        left -= n
        i += 1
    pool = text_line_pool(f"{seed}/doc", 2000)
    for i in range(100):
        write(f"{root}/share/doc/page-{i:03d}.md",
              source_like(rng, pool, rng.randrange(2000, 16000), f"page-{i}"))


def gen_big(root, total):
    write(f"{root}/buildpack.toml", buildpack_toml("bench/big", [("linux", "amd64")]))
    gen_binary_tree(root, total, "big")


def gen_multi(root, total):
    write(f"{root}/buildpack.toml",
          buildpack_toml("bench/multi", [("linux", "amd64"), ("linux", "arm64")]))
    gen_binary_tree(f"{root}/linux/amd64", total // 2, "multi-amd64")
    gen_binary_tree(f"{root}/linux/arm64", total // 2, "multi-arm64")


def gen_small(root, nfiles):
    write(f"{root}/buildpack.toml", buildpack_toml("bench/small", [("linux", "amd64")]))
    write(f"{root}/bin/build", BIN_SCRIPT, 0o755)
    write(f"{root}/bin/detect", BIN_SCRIPT, 0o755)
    rng = random.Random("small")
    pool = text_line_pool("small/pool", 40000)
    exts = ["py", "go", "js", "rs", "rb", "java", "ts", "c", "h", "json"]
    for i in range(nfiles - 2):
        d = f"{root}/src/pkg{i // 2000:02d}/mod{(i // 50) % 40:02d}"
        if i % 50 == 0:
            os.makedirs(d, exist_ok=True)
        n = int(min(40000, max(120, rng.lognormvariate(7.6, 0.8))))  # mean about 2.8 kB
        name = f"file{i:05d}.{exts[i % len(exts)]}"
        with open(f"{d}/{name}", "wb") as f:
            f.write(source_like(rng, pool, n, name))


def gen_huge(root, total):
    """One `total`-byte file, written streaming (never held in memory): every 16 MiB holds
    4 MiB of PRNG bytes, 4 MiB of binary-like bytes and an 8 MiB hole (zeros, sparse on disk).
    Long incompressible runs matter: they fill zstd's multi-threaded job buffers."""
    write(f"{root}/buildpack.toml", buildpack_toml("bench/huge", [("linux", "amd64")]))
    write(f"{root}/bin/build", BIN_SCRIPT, 0o755)
    write(f"{root}/bin/detect", BIN_SCRIPT, 0o755)
    os.makedirs(f"{root}/data", exist_ok=True)
    with open(f"{root}/data/huge.bin", "wb") as f:
        f.truncate(total)
        for i, off in enumerate(range(0, total, 16 * MiB)):
            f.seek(off)
            n = min(4 * MiB, total - off)
            f.write(prng_bytes(f"huge/{i}", n))
            n = min(4 * MiB, total - off - n)
            if n > 0:
                f.write(binary_like(f"huge/bin/{i}", n))


def gen_real(root, total):
    """Real executables and shared libraries of this machine (regular files in sorted path
    order from REAL_SOURCES) up to `total` bytes: the one workload not generated, so its
    figures hold for this machine's files only."""
    write(f"{root}/buildpack.toml", buildpack_toml("bench/real", [("linux", "amd64")]))
    write(f"{root}/bin/build", BIN_SCRIPT, 0o755)
    write(f"{root}/bin/detect", BIN_SCRIPT, 0o755)
    src = next((d for d in REAL_SOURCES[1:] if os.path.isdir(d)), None)
    files = []
    for top in (REAL_SOURCES[0], src):
        for d, _, names in os.walk(top or "/nonexistent"):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append(p)
    left = total
    for p in sorted(files):
        if left <= 0:
            break
        try:
            with open(p, "rb") as f:
                data = f.read(left)
        except OSError:
            continue
        write(f"{root}/sys{p}", data, 0o755)
        left -= len(data)


def ensure_workload(work, name, gen, param):
    """Generate work/name with gen(dir, param) unless a matching complete copy exists."""
    path = os.path.join(work, "data", name)
    stamp = {"gen_version": GEN_VERSION, "param": param}
    stamp_file = path + ".stamp"
    try:
        with open(stamp_file) as f:
            if json.load(f) == stamp and os.path.isdir(path):
                return path
    except (OSError, ValueError):
        pass
    log(f"e2e: generating workload {name} ({param}) ...")
    t0 = time.time()
    tmp = path + ".tmp"
    for p in (tmp, path):
        shutil.rmtree(p, ignore_errors=True)
    if os.path.exists(stamp_file):
        os.remove(stamp_file)
    gen(tmp, param)
    os.rename(tmp, path)
    with open(stamp_file, "w") as f:
        json.dump(stamp, f)
    log(f"e2e: generated {name} in {time.time() - t0:.1f} s")
    return path


def tree_stats(path):
    size = files = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            size += os.lstat(os.path.join(d, f)).st_size
            files += 1
    return size, files


# ----------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------


class Cmd:
    """One command of a comparison. argv(r) gives the argv for round r (r < 0: warm-up).
    out(r) is the path whose size is the output size (file or directory); size_argv, for
    pipelines, is a variant printing the output byte count, run once untimed."""

    def __init__(self, label, argv, out=None, size_argv=None, env=None, after=None):
        self.label = label
        self.argv = argv
        self.out = out
        self.size_argv = size_argv
        self.env = env
        self.after = after
        self.size = None
        self.runs = []  # (wall, cpu, rss_kib, size)


def sh(script):
    return ["bash", "-c", "set -eo pipefail; " + script]


def path_size(p):
    if p is None or not os.path.lexists(p):
        return None
    if os.path.isdir(p):
        return tree_stats(p)[0]
    return os.path.getsize(p)


def remove(p):
    if p is None:
        return
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.remove(p)


class Runner:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.logdir = os.path.join(work, "logs")
        shutil.rmtree(self.logdir, ignore_errors=True)
        os.makedirs(self.logdir, exist_ok=True)
        self.timefile = os.path.join(work, "time.out")

    def measure(self, cmd, argv, tag):
        logf = os.path.join(self.logdir, f"{tag}.log")
        full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", self.timefile, "--"] + argv
        env = dict(os.environ, **(cmd.env or {}))
        with open(logf, "wb") as lf:
            lf.write(("$ " + shlex.join(argv) + "\n").encode())
            lf.flush()
            try:
                p = subprocess.run(full, stdout=lf, stderr=subprocess.STDOUT, env=env,
                                   timeout=self.args.timeout)
            except subprocess.TimeoutExpired:
                die(f"{cmd.label}: timed out after {self.args.timeout} s (log: {logf})")
        if p.returncode != 0:
            with open(logf, "rb") as lf:
                tail = lf.read()[-2000:].decode(errors="replace")
            die(f"{cmd.label} failed with exit code {p.returncode}:\n"
                f"  $ {shlex.join(argv)}\n{tail}")
        with open(self.timefile) as f:
            last = f.read().strip().splitlines()[-1].split()
        wall, user, sys_, rss = float(last[0]), float(last[1]), float(last[2]), int(last[3])
        return wall, user + sys_, rss

    def run_pair(self, name, cmds, round_setup=None):
        """Run cmds alternated: warm-up rounds, then counted rounds. round_setup(r), if
        given, runs untimed before each round (r < 0: warm-up)."""
        for c in cmds:
            if c.size_argv is not None and c.size is None:
                out = subprocess.run(c.size_argv, stdout=subprocess.PIPE, check=True,
                                     timeout=self.args.timeout).stdout
                c.size = int(out.split()[0])
        total = self.args.warmup + self.args.runs
        for r in range(total):
            counted = r >= self.args.warmup
            rr = r - self.args.warmup
            if round_setup is not None:
                round_setup(rr)
            for c in cmds:
                out = c.out(rr) if callable(c.out) else c.out
                remove(out)
                wall, cpu, rss = self.measure(c, c.argv(rr), f"{name}-{c.label}-{r}".replace(
                    "/", "_").replace(" ", "_"))
                size = path_size(out) if out is not None else c.size
                if out is not None and c.after is None:
                    remove(out)
                if c.after is not None:
                    c.after(rr, out)
                log(f"  {name:<22} {'run' if counted else 'warm-up':<7} {rr if counted else '':<2} "
                    f"{c.label:<34} {wall:7.2f} s wall {cpu:7.2f} s cpu {rss / 1024:7.1f} MiB"
                    + (f" {size / 1e6:9.2f} MB" if size is not None else ""))
                if counted:
                    c.runs.append((wall, cpu, rss, size))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio_median(a, b, i):
    rs = []
    for ra, rb in zip(a.runs, b.runs):
        if ra[i] is None or rb[i] is None or rb[i] == 0:
            continue
        rs.append(ra[i] / rb[i])
    return median(rs)


def fmt(x, nd=2):
    return "–" if x is None else f"{x:.{nd}f}"


# ----------------------------------------------------------------------------------------------
# Push support
# ----------------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """The CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, temp storage."""

    def __init__(self, work, name):
        self.dir = os.path.join(work, "registry-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.dir}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{self.port}
""")
        self.logf = open(os.path.join(self.dir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=2):
                    break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    die(f"docker-registry did not start (log: {self.dir}/registry.log)")
                time.sleep(0.2)

    def blob_gets(self):
        """Blob GETs in the access log so far."""
        self.logf.flush()
        with open(os.path.join(self.dir, "registry.log"), "rb") as f:
            return sum(1 for line in f if b'"GET /v2/' in line and b"/blobs/sha256:" in line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class CountingProxy:
    """TCP proxy 127.0.0.1:port -> registry counting client-to-registry bytes."""

    def __init__(self):
        self.target = None
        self.sent = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def _pipe(self, src, dst, count):
        try:
            while True:
                b = src.recv(1 << 16)
                if not b:
                    break
                if count:
                    with self.lock:
                        self.sent += len(b)
                dst.sendall(b)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self):
        with self.lock:
            n, self.sent = self.sent, 0
        return n

    def close(self):
        self.sock.close()


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def pull_workloads(cnbpkg, need, o, regs, runner, results, notes, work):
    """pull, pull-store, pull-again: a two-platform package (the *multi* tree, put into a
    local docker-registry by skopeo, untimed) pulled by cnbpkg and copied out by skopeo."""
    p, size, n = need("multi")
    pkg = o("pull-src.cnb")
    log("e2e: pull: packaging and uploading the source package (untimed)")
    subprocess.run([cnbpkg, "buildpack", "package", pkg, "--path", p, "-q",
                    "-t", "linux/amd64", "-t", "linux/arm64"], check=True)
    pkg_size = os.path.getsize(pkg)
    regs["pull"] = Registry(work, "pull")
    ref = f"127.0.0.1:{regs['pull'].port}/bench/pull:v1"
    policy = [] if os.path.exists("/etc/containers/policy.json") else ["--insecure-policy"]
    skopeo = ["skopeo"] + policy + ["copy", "-q", "--all", "--src-tls-verify=false"]
    subprocess.run(["skopeo"] + policy + ["copy", "-q", "--all", "--preserve-digests",
                    "--dest-tls-verify=false", f"oci-archive:{pkg}", f"docker://{ref}"],
                   check=True)
    store, out = o("pull-store"), o("pull.cnb")

    def drop_store(_r, path):
        remove(path)
        remove(store)

    pull = [cnbpkg, "pull", "-q", "--insecure", "--store", store]
    cmds = [
        Cmd("cnbpkg pull --output FILE", lambda r: pull + ["--output", out, ref], out=out,
            after=drop_store),
        Cmd("skopeo copy --all oci-archive:", lambda r: skopeo + [
            f"docker://{ref}", f"oci-archive:{o('pull-skopeo.tar')}"], out=o("pull-skopeo.tar")),
        Cmd("skopeo ... --preserve-digests", lambda r: skopeo + [
            "--preserve-digests", f"docker://{ref}", f"oci-archive:{o('pull-skopeo-p.tar')}"],
            out=o("pull-skopeo-p.tar")),
    ]
    desc = (f"a {pkg_size / 1e6:.0f} MB two-platform package from a local docker-registry into "
            "one archive (cnbpkg: a fresh store every run, filled on the way)")
    log(f"e2e: pull: {desc}")
    runner.run_pair("pull", cmds)
    results.append(("pull", desc, cmds))

    cmds = [
        Cmd("cnbpkg pull (store)", lambda r: pull + [ref], out=store),
        Cmd("skopeo copy --all oci:DIR", lambda r: skopeo + [
            f"docker://{ref}", f"oci:{o('pull-skopeo-dir')}:x"], out=o("pull-skopeo-dir")),
    ]
    desc = "the same package into an empty store (cnbpkg) or OCI layout directory (skopeo)"
    log(f"e2e: pull-store: {desc}")
    runner.run_pair("pull-store", cmds)
    results.append(("pull-store", desc, cmds))

    again_store, again_dir = o("pull-again-store"), o("pull-again-dir")
    subprocess.run([cnbpkg, "pull", "-q", "--insecure", "--store", again_store, ref], check=True)
    subprocess.run(skopeo + [f"docker://{ref}", f"oci:{again_dir}:x"], check=True)
    gets = {"last": regs["pull"].blob_gets()}

    def count(label):
        def f(_r, _out):
            now = regs["pull"].blob_gets()
            gets[label] = gets.get(label, 0) + now - gets["last"]
            gets["last"] = now
        return f

    cmds = [
        Cmd("cnbpkg pull (again)", lambda r: [cnbpkg, "pull", "-q", "--insecure", "--store",
                                              again_store, ref], after=count("cnbpkg")),
        Cmd("skopeo copy oci:DIR (again)", lambda r: skopeo + [
            f"docker://{ref}", f"oci:{again_dir}:x"], after=count("skopeo")),
    ]
    desc = "the same pull again into the filled store / layout directory"
    log(f"e2e: pull-again: {desc}")
    runner.run_pair("pull-again", cmds)
    results.append(("pull-again", desc, cmds))
    notes.append(f"pull-again: blob GETs in the registry's access log over all repeated "
                 f"pulls: cnbpkg {gets.get('cnbpkg', 0)}, skopeo {gets.get('skopeo', 0)}")


def check_tools(tools):
    missing = [(t, pkg) for t, pkg in tools.items() if shutil.which(t) is None]
    if missing:
        die("required tools missing: " + ", ".join(t for t, _ in missing) +
            "\n  install them with: apt-get install " + " ".join(sorted({p for _, p in missing})))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small workloads, 2 runs (smoke test)")
    ap.add_argument("--runs", type=int, help="counted runs per command (default 5; quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up rounds (default 1)")
    ap.add_argument("--only", help="comma-separated workload names to run (default: all)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run cargo build (also implied by $CNBPKG)")
    ap.add_argument("--timeout", type=float, help="per-command timeout in s (default 600; quick 120)")
    ap.add_argument("--budget", type=float,
                    help="skip remaining workloads after this many s (default 1800; quick 600)")
    args = ap.parse_args()
    q = 1 if args.quick else 0
    args.runs = args.runs if args.runs is not None else (2 if args.quick else 5)
    args.timeout = args.timeout or (120 if args.quick else 600)
    args.budget = args.budget or (600 if args.quick else 1800)
    if args.runs < 1 or args.warmup < 0:
        die("--runs must be >= 1 and --warmup >= 0")

    check_tools(TOOLS)
    work = os.path.abspath(os.environ.get("CNBPKG_BENCH_WORK") or os.path.join(REPO, "target",
                                                                                "bench-work"))
    os.makedirs(work, exist_ok=True)
    mode = "quick" if args.quick else "full"

    cnbpkg = os.environ.get("CNBPKG")
    if not cnbpkg:
        cnbpkg = os.path.join(REPO, "target", "release", "cnbpkg")
        if not args.no_build:
            log("e2e: cargo build --release --locked")
            subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO,
                           check=True)
    if not os.access(cnbpkg, os.X_OK):
        die(f"cnbpkg binary not found at {cnbpkg} (build it or set $CNBPKG)")
    cnbpkg = os.path.abspath(cnbpkg)
    have_push = subprocess.run([cnbpkg, "push", "--help"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL).returncode == 0
    if have_push:
        check_tools(PUSH_TOOLS)

    only = set(args.only.split(",")) if args.only else None
    want = lambda n: only is None or n in only  # noqa: E731

    out_dir = os.path.join(work, "out")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                         text=True).stdout.strip() or "unknown"
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])

    big_n = SIZES["big_bytes"][q]
    data = {}

    def need(name):
        if name in data:
            return data[name]
        gens = {
            "big": (gen_big, big_n),
            "multi": (gen_multi, big_n),
            "small": (gen_small, SIZES["small_files"][q]),
            "huge": (gen_huge, SIZES["huge_bytes"][q]),
            "real": (gen_real, SIZES["real_bytes"][q]),
        }
        gen, param = gens[name]
        p = ensure_workload(work, f"{mode}-{name}", gen, param)
        data[name] = (p,) + tree_stats(p)
        return data[name]

    def cnb(label, tree, targets, out, compression=None, extra=()):
        argv = [cnbpkg, "buildpack", "package", out, "--path", tree, "-q"]
        for t in targets:
            argv += ["-t", t]
        if compression:
            argv += ["--compression", compression]
        return Cmd(label, lambda r: argv + list(extra), out=out)

    def umoci(label, inserts, out):
        # inserts: [(tag, source dir)]; one image per tag, each with one inserted layer.
        steps = [f"umoci init --layout {shlex.quote(out)}"]
        for tag, src in inserts:
            steps.append(f"umoci new --image {shlex.quote(out)}:{tag}")
            steps.append(f"umoci insert --no-history --image {shlex.quote(out)}:{tag} "
                         f"{shlex.quote(src)} /cnb/buildpacks/bench/1.0.0")
        return Cmd(label, lambda r: sh(" && ".join(steps)), out=out)

    def pipe(label, tree, compressor):
        tar = f"tar -C {shlex.quote(tree)} -cf - ."
        return Cmd(label, lambda r: sh(f"{tar} | {compressor} | sha256sum >/dev/null"),
                   size_argv=sh(f"{tar} | {compressor} | wc -c"))

    o = lambda n: os.path.join(out_dir, n)  # noqa: E731
    T1 = ["linux/amd64"]
    T2 = ["linux/amd64", "linux/arm64"]
    T8 = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386",
          "linux/ppc64le", "linux/s390x", "linux/riscv64"]

    # (name, description, builder returning [subject, peer...]); ratios = subject / peer.
    workloads = []

    def big1():
        p, size, n = need("big")
        return (f"{size / 1e6:.0f} MB in {n} files, one target (gzip)", [
            cnb("cnbpkg -t linux/amd64", p, T1, o("big1.cnb")),
            umoci("umoci init/new/insert", [("amd64", p)], o("big1-umoci")),
            pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
        ])
    workloads.append(("big-1t", big1))

    def big2f():
        p, size, n = need("multi")
        return (f"{size / 1e6:.0f} MB in {n} files, two targets from platform folders "
                "linux/amd64 and linux/arm64 (different content)", [
                    cnb("cnbpkg -t amd64 -t arm64", p, T2, o("big2f.cnb")),
                    umoci("umoci 2 images, 1 folder each",
                          [("amd64", f"{p}/linux/amd64"), ("arm64", f"{p}/linux/arm64")],
                          o("big2f-umoci")),
                    pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
                ])
    workloads.append(("big-2t-folders", big2f))

    def big2s():
        p, size, n = need("big")
        return (f"{size / 1e6:.0f} MB in {n} files, two targets sharing the root "
                "(one layer used by both images)", [
                    cnb("cnbpkg -t amd64 -t arm64", p, T2, o("big2s.cnb")),
                    umoci("umoci 2 images, same tree", [("amd64", p), ("arm64", p)],
                          o("big2s-umoci")),
                    pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
                ])
    workloads.append(("big-2t-shared", big2s))

    def real():
        p, size, n = need("real")
        return (f"{size / 1e6:.0f} MB in {n} files: this machine's own executables and "
                "libraries, one target (gzip)", [
                    cnb("cnbpkg -t linux/amd64", p, T1, o("real.cnb")),
                    umoci("umoci init/new/insert", [("amd64", p)], o("real-umoci")),
                    pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
                ])
    workloads.append(("real-binaries", real))

    def small():
        p, size, n = need("small")
        return (f"{size / 1e6:.0f} MB in {n} source-like text files, one target (gzip)", [
            cnb("cnbpkg -t linux/amd64", p, T1, o("small.cnb")),
            umoci("umoci init/new/insert", [("amd64", p)], o("small-umoci")),
            pipe("tar | gzip -6 | sha256sum", p, "gzip -6"),
            pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
        ])
    workloads.append(("small-files", small))

    def zbig():
        p, size, n = need("big")
        return (f"{size / 1e6:.0f} MB in {n} files, one target, zstd", [
            cnb("cnbpkg --compression zstd", p, T1, o("zbig.cnb"), "zstd"),
            pipe("tar | zstd -3 -T2 | sha256sum", p, "zstd -q -3 -T2 -c"),
        ])
    workloads.append(("zstd-big", zbig))

    def zsmall():
        p, size, n = need("small")
        return (f"{size / 1e6:.0f} MB in {n} text files, one target, zstd", [
            cnb("cnbpkg --compression zstd", p, T1, o("zsmall.cnb"), "zstd"),
            pipe("tar | zstd -3 -T2 | sha256sum", p, "zstd -q -3 -T2 -c"),
        ])
    workloads.append(("zstd-small", zsmall))

    def t8():
        p, size, n = need("big")
        return (f"{size / 1e6:.0f} MB in {n} files, eight targets sharing the root vs one "
                "target (ratio = 8 targets / 1 target)", [
                    cnb("cnbpkg 8 targets", p, T8, o("t8.cnb")),
                    cnb("cnbpkg 1 target", p, T1, o("t1.cnb")),
                ])
    workloads.append(("8-targets-vs-1", t8))

    def huge_gzip():
        p, size, n = need("huge")
        return (f"one {size / MiB:.0f} MiB file (per 16 MiB: 4 MiB random, 4 MiB binary-like, 8 MiB zeros), gzip", [
            cnb("cnbpkg (gzip)", p, T1, o("huge.cnb")),
            pipe("tar | pigz -p2 -6 | sha256sum", p, "pigz -p2 -6"),
        ])
    workloads.append(("huge-layer-gzip", huge_gzip))

    def huge_zstd():
        p, size, n = need("huge")
        return (f"one {size / MiB:.0f} MiB file, zstd", [
            cnb("cnbpkg --compression zstd", p, T1, o("hugez.cnb"), "zstd"),
            pipe("tar | zstd -3 -T2 | sha256sum", p, "zstd -q -3 -T2 -c"),
        ])
    workloads.append(("huge-layer-zstd", huge_zstd))

    runner = Runner(args, work)
    t_start = time.time()
    results = []  # (name, desc, cmds, extra notes)
    notes = []
    regs = {}
    try:
        for name, build in workloads:
            if not want(name):
                continue
            if time.time() - t_start > args.budget:
                notes.append(f"{name}: skipped, time budget of {args.budget:.0f} s exhausted")
                continue
            desc, cmds = build()
            log(f"e2e: {name}: {desc}")
            runner.run_pair(name, cmds)
            results.append((name, desc, cmds))

        push_names = ("push", "push-again")
        if any(want(n) for n in push_names):
            if not have_push:
                notes.append("push, push-again: skipped — `cnbpkg push --help` fails on this "
                             f"binary (git {rev}): the push subcommand is not built in")
            elif time.time() - t_start > args.budget:
                notes.append(f"push: skipped, time budget of {args.budget:.0f} s exhausted")
            else:
                p, size, n = need("big")
                pkg = o("push-src.cnb")
                log("e2e: push: packaging the source package (untimed)")
                subprocess.run([cnbpkg, "buildpack", "package", pkg, "--path", p, "-q",
                                "-t", "linux/amd64"], check=True)
                pkg_size = os.path.getsize(pkg)
                # Fresh, empty registries every round, one per tool: skopeo remembers blob
                # locations (its blob-info cache) and would otherwise mount blobs from earlier
                # pushes instead of uploading them.
                proxies = {"cnbpkg": CountingProxy(), "skopeo": CountingProxy()}
                state = {}
                sent = {}
                policy = [] if os.path.exists("/etc/containers/policy.json") else [
                    "--insecure-policy"]

                def new_registries(r):
                    for tool, px in proxies.items():
                        if tool in regs:
                            regs.pop(tool).stop()
                        regs[tool] = Registry(work, tool)
                        px.target = regs[tool].port
                        px.take()
                        state[tool, "reg"] = f"127.0.0.1:{regs[tool].port}"
                        state[tool, "via"] = f"127.0.0.1:{px.port}"
                    state["round"] = r + 10

                def skopeo(host):
                    return (["skopeo"] + policy +
                            ["copy", "-q", "--all", f"oci-archive:{pkg}",
                             f"docker://{state['skopeo', host]}/bench/skopeo-{state['round']}:v1",
                             "--dest-tls-verify=false"])

                def cnb_push(host):
                    return [cnbpkg, "push", pkg,
                            f"{state['cnbpkg', host]}/bench/cnbpkg-{state['round']}:v1",
                            "--insecure"]

                def count(label):
                    def f(r, _out):
                        n = proxies[label].take()
                        if r >= 0:
                            sent.setdefault(label, []).append(n)
                    return f

                cmds = [
                    Cmd("cnbpkg push --insecure", lambda r: cnb_push("reg")),
                    Cmd("skopeo copy --all oci-archive:", lambda r: skopeo("reg")),
                    Cmd("cnbpkg push (again)", lambda r: cnb_push("via"), after=count("cnbpkg")),
                    Cmd("skopeo copy (again)", lambda r: skopeo("via"), after=count("skopeo")),
                ]
                desc = (f"a {pkg_size / 1e6:.0f} MB single-target package to a local "
                        "docker-registry (fresh, empty registries every round, one per tool)")
                desc2 = ("the same package again to the same repository right after (should "
                         "send no blob bytes); request bytes counted by a proxy in front of the "
                         "registry")
                log(f"e2e: push: {desc}; then push-again: {desc2}")
                runner.run_pair("push", cmds, round_setup=new_registries)
                results.append(("push", desc, cmds[:2]))
                results.append(("push-again", desc2, cmds[2:]))
                for label, vals in sent.items():
                    notes.append(f"push-again: {label} sent at most {max(vals)} bytes "
                                 f"(requests included) per push; the package is {pkg_size} bytes")
                for px in proxies.values():
                    px.close()

        pull_names = ("pull", "pull-store", "pull-again")
        have_pull = subprocess.run([cnbpkg, "pull", "--help"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL).returncode == 0
        if any(want(n) for n in pull_names):
            if not have_pull:
                notes.append("pull: skipped — `cnbpkg pull --help` fails on this binary "
                             f"(git {rev})")
            elif time.time() - t_start > args.budget:
                notes.append(f"pull: skipped, time budget of {args.budget:.0f} s exhausted")
            else:
                pull_workloads(cnbpkg, need, o, regs, runner, results, notes, work)
    finally:
        for reg in regs.values():
            reg.stop()
        shutil.rmtree(out_dir, ignore_errors=True)

    elapsed = time.time() - t_start
    lines = []
    lines.append(f"# cnbpkg end-to-end benchmark ({mode})\n")
    lines.append(f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
                 f"{cpu_model()}, load average at start {load}; cnbpkg git {rev}; "
                 f"{args.runs} counted runs after {args.warmup} warm-up, alternated; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; took {elapsed / 60:.1f} min.\n")
    lines.append("Medians of the counted runs. `×` columns: the workload's first row divided by "
                 "this row, median of per-round ratios (below 1 = the first row is faster / "
                 "smaller). CPU = user + sys of the process tree. Peak RSS: GNU time's %M, the "
                 "largest single process (for `bash -c` pipelines: the largest stage). Output: "
                 "the .cnb file, the umoci layout directory, or the compressed stream.\n")
    lines.append("| workload | command | wall s | CPU s | peak RSS MiB | output MB "
                 "| wall × | CPU × | RSS × | size × |")
    lines.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, desc, cmds in results:
        a = cmds[0]
        for i, c in enumerate(cmds):
            w = median(r[0] for r in c.runs)
            u = median(r[1] for r in c.runs)
            m = median(r[2] for r in c.runs)
            s = median(r[3] for r in c.runs)
            cells = [name if i == 0 else "", "`" + c.label.replace("|", "\\|") + "`", fmt(w), fmt(u),
                     fmt(m / 1024 if m is not None else None, 1),
                     fmt(s / 1e6 if s is not None else None, 1)]
            if i == 0:
                cells += [""] * 4
            else:
                cells += [fmt(ratio_median(a, c, k)) for k in range(4)]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Workloads:\n")
    for name, desc, _ in results:
        lines.append(f"- **{name}**: {desc}")
    for name, desc, cmds in results:
        if name.startswith("huge-layer"):
            peak = max(r[2] for r in cmds[0].runs) / 1024
            verdict = "meets" if peak <= 64 else "MISSES"
            notes.append(f"{name}: cnbpkg peak RSS {peak:.1f} MiB (max over runs) {verdict} "
                         "the 64 MiB goal")
    if notes:
        lines.append("\nNotes:\n")
        lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    for fn in ("results.md", f"results-{mode}.md"):
        with open(os.path.join(work, fn), "w") as f:
            f.write(text)
    raw = {name: {c.label: c.runs for c in cmds} for name, _, cmds in results}
    with open(os.path.join(work, f"results-{mode}.json"), "w") as f:
        json.dump(raw, f, indent=1)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
