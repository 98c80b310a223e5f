#!/usr/bin/env python3
"""Builder benchmark: `cnbpkg builder create` for two targets against copying the build image
alone with `skopeo copy --all` into an oci-archive, measured in the same run.

Usage: benches/builder.py [--mb N] [--runs N] [--warmup N] [--no-build]

Generates (once, cached under $CNBPKG_BENCH_WORK or target/bench-work/builder) a two-platform
build image made by umoci, with N MB (default 300) of random and binary-like files per
platform, combined into an image index as skopeo writes one; lifecycle archives per
architecture in the release's layout (stand-in binaries with a real ELF header); a buildpack
directory. Then runs the two commands alternated (A B A B ...) after warm-up rounds under GNU
time and prints medians of wall time, CPU time (user+sys) and peak RSS, and the cnbpkg/skopeo
ratios (median of per-round ratios). See benches/README.md.

Python 3 standard library only, plus umoci, skopeo and GNU time.
"""

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import binary_like, prng_bytes  # noqa: E402  (the deterministic generators)

GEN_VERSION = 1  # bump when the generators change, to regenerate the cached inputs
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1000 * 1000
ARCHES = ["amd64", "arm64"]
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}
RELEASE_ARCH = {"amd64": "x86-64", "arm64": "arm64"}
LIFECYCLE_TOML = """[apis]
[apis.buildpack]
  deprecated = []
  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"]
[apis.platform]
  deprecated = []
  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15"]
[api]
  platform = "0.7"
  buildpack = "0.7"
[lifecycle]
  version = "0.20.5"
"""
PHASES = ["analyzer", "builder", "creator", "detector", "exporter", "extender", "rebaser",
          "restorer"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(argv, **kw):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)


def elf(arch, n):
    """A stand-in executable of n bytes with a real ELF64 header for arch."""
    h = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9))
    h += (2).to_bytes(2, "little") + ELF_MACHINE[arch].to_bytes(2, "little")
    h += (1).to_bytes(4, "little") + bytes(24) + bytes(4) + (64).to_bytes(2, "little")
    h += bytes(64 - len(h))
    return bytes(h) + binary_like(f"elf/{arch}", max(0, n - 64))


# ----------------------------------------------------------------------------------------------
# Inputs


def blob_json(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return json.load(f)


def put_blob(layout, data):
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", hexd), "wb") as f:
        f.write(data)
    return f"sha256:{hexd}", len(data)


def build_image(layout, mb):
    """Two platform images by umoci (a base layer, a payload layer of mb MB), then an index."""
    run(["umoci", "init", "--layout", layout])
    tags = []
    for arch in ARCHES:
        image = f"{layout}:{arch}"
        run(["umoci", "new", "--image", image])
        bundle = f"{layout}.bundle"
        for part in ("base", "payload"):
            shutil.rmtree(bundle, ignore_errors=True)
            run(["umoci", "unpack", "--rootless", "--image", image, bundle])
            root = os.path.join(bundle, "rootfs")
            if part == "base":
                os.makedirs(os.path.join(root, "etc"), exist_ok=True)
                with open(os.path.join(root, "etc/os-release"), "w") as f:
                    f.write('ID=ubuntu\nVERSION_ID="22.04"\n')
            else:
                lib = os.path.join(root, "usr/lib")
                os.makedirs(lib, exist_ok=True)
                per = 10 * MB
                for i in range(max(1, mb * MB // per)):
                    seed = f"builder/{arch}/{i}"
                    data = prng_bytes(seed, per) if i % 2 else binary_like(seed, per)
                    with open(os.path.join(lib, f"lib{i}.so"), "wb") as f:
                        f.write(data)
            run(["umoci", "repack", "--no-history", "--image", image, bundle])
        shutil.rmtree(bundle, ignore_errors=True)
        run(["umoci", "config", "--no-history", "--image", image, "--os", "linux",
             "--architecture", arch, "--config.env", "CNB_USER_ID=1000",
             "--config.env", "CNB_GROUP_ID=1000", "--config.user", "1000:1000",
             "--config.label", "io.buildpacks.base.distro.name=ubuntu",
             "--config.label", "io.buildpacks.base.distro.version=22.04"])
        tags.append(arch)
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    by_tag = {d["annotations"]["org.opencontainers.image.ref.name"]: d for d in top["manifests"]}
    manifests = []
    for arch in tags:
        d = by_tag[arch]
        m = blob_json(layout, d["digest"])
        c = blob_json(layout, m["config"]["digest"])
        manifests.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                          "platform": {"architecture": c["architecture"], "os": c["os"]}})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    digest, size = put_blob(layout, json.dumps(index).encode())
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(top, f)


def lifecycle_tgz(path, arch):
    """A lifecycle release archive: lifecycle.toml, lifecycle/ with the multicall binary (8 MB),
    the launcher (2 MB) and the phase links."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=None, link=None, mode=0o755):
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            info.mode = mode
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                t.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        add("lifecycle.toml", LIFECYCLE_TOML.encode(), mode=0o644)
        add("lifecycle/")
        for phase in PHASES:
            add(f"lifecycle/{phase}", link="lifecycle")
        add("lifecycle/launcher", elf(arch, 2 * MB))
        add("lifecycle/lifecycle", elf(arch, 8 * MB))


def inputs(work, mb):
    data = os.path.join(work, f"data-{mb}mb")
    stamp = os.path.join(data, "generated")
    if os.path.exists(stamp) and open(stamp).read() == str(GEN_VERSION):
        return data
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    log(f"generating a two-platform build image of {mb} MB per platform ...")
    build_image(os.path.join(data, "build-image"), mb)
    for arch in ARCHES:
        lifecycle_tgz(os.path.join(data, f"lifecycle-v0.20.5+linux.{RELEASE_ARCH[arch]}.tgz"),
                      arch)
    bp = os.path.join(data, "bp")
    os.makedirs(os.path.join(bp, "bin"))
    with open(os.path.join(bp, "buildpack.toml"), "w") as f:
        f.write('api = "0.10"\n[buildpack]\nid = "bench/bp"\nversion = "1.0.0"\n'
                '[[targets]]\nos = "linux"\narch = "amd64"\n'
                '[[targets]]\nos = "linux"\narch = "arm64"\n')
    for name in ("build", "detect"):
        with open(os.path.join(bp, "bin", name), "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(os.path.join(bp, "bin", name), 0o755)
    with open(os.path.join(data, "builder.toml"), "w") as f:
        f.write('[[buildpacks]]\nuri = "bp"\n\n[[order]]\n[[order.group]]\nid = "bench/bp"\n\n'
                '[build]\nimage = "build-image"\n\n[[run.images]]\nimage = "example.com/run"\n\n'
                '[lifecycle]\nuri = "lifecycle-v0.20.5+linux.{arch}.tgz"\n\n'
                '[[targets]]\nos = "linux"\narch = "amd64"\n\n'
                '[[targets]]\nos = "linux"\narch = "arm64"\n')
    with open(stamp, "w") as f:
        f.write(str(GEN_VERSION))
    return data


# ----------------------------------------------------------------------------------------------
# Measuring


def measure(argv, timefile, logf):
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", timefile, "--"] + argv
    with open(logf, "ab") as lf:
        p = subprocess.run(full, stdout=lf, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit(f"builder bench: {argv[0]} failed ({p.returncode}); see {logf}")
    wall, user, sys_, rss = open(timefile).read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=300, help="payload MB per platform")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    for tool in ("umoci", "skopeo", "/usr/bin/time"):
        if shutil.which(tool) is None:
            sys.exit(f"builder bench: {tool} is needed (Debian packages umoci, skopeo, time)")
    cnbpkg = os.environ.get("CNBPKG")
    if cnbpkg is None:
        cnbpkg = os.path.join(REPO, "target/release/cnbpkg")
        if not args.no_build:
            run(["cargo", "build", "--release", "--locked"], cwd=REPO)
    work = os.environ.get("CNBPKG_BENCH_WORK", os.path.join(REPO, "target/bench-work/builder"))
    os.makedirs(work, exist_ok=True)
    data = inputs(work, args.mb)
    out_a = os.path.join(work, "builder.cnb")
    out_b = os.path.join(work, "build-image.tar")
    cmds = {
        "cnbpkg builder create (2 targets)":
            [cnbpkg, "builder", "create", out_a, "--config", os.path.join(data, "builder.toml"),
             "-q"],
        "skopeo copy --all (build image only)":
            ["skopeo", "copy", "--all", "-q", f"oci:{os.path.join(data, 'build-image')}:latest",
             f"oci-archive:{out_b}"],
    }
    outs = dict(zip(cmds, (out_a, out_b)))
    results = {name: [] for name in cmds}
    timefile = os.path.join(work, "time.out")
    logf = os.path.join(work, "bench.log")
    for r in range(args.warmup + args.runs):
        for name, argv in cmds.items():
            if os.path.exists(outs[name]):
                os.remove(outs[name])
            wall, cpu, rss = measure(argv, timefile, logf)
            size = os.path.getsize(outs[name])
            if r >= args.warmup:
                results[name].append((wall, cpu, rss, size))
            log(f"round {r} {name}: {wall:.2f} s wall, {cpu:.2f} s cpu, {rss // 1024} MiB")
    a, b = (results[n] for n in cmds)
    ratio = [[x[i] / y[i] for x, y in zip(a, b)] for i in range(3)]
    med = statistics.median
    print("| command | wall s | cpu s | peak RSS MiB | output MB |")
    print("|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        print(f"| {name} | {med(r[0] for r in rows):.2f} | {med(r[1] for r in rows):.2f} | "
              f"{med(r[2] for r in rows) / 1024:.0f} | {med(r[3] for r in rows) / MB:.0f} |")
    print(f"| ratio cnbpkg/skopeo | {med(ratio[0]):.2f}× | {med(ratio[1]):.2f}× | "
          f"{med(ratio[2]):.2f}× | |")
    for f in outs.values():
        if os.path.exists(f):
            os.remove(f)


if __name__ == "__main__":
    main()
