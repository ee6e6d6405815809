#!/usr/bin/python3
"""clang-tidy over the files of a compile database that match a regex, skipping files that were
already found clean with exactly the same input.

A file's input is what clang-tidy sees: the file preprocessed with its own compile command (so
every header it includes counts), the .clang-tidy configuration and clang-tidy's version. Paths
of the checkout are replaced by a placeholder before hashing, so a fresh clone elsewhere hits the
cache an earlier clone filled. Only clean results are cached: a file with findings, or one that
fails to preprocess, is checked every time.

  tidy_cached.py BUILD_DIR REGEX        (cache: $CB_TIDY_CACHE, default ~/.cache/credbroker-tidy)

Prints clang-tidy's output for the files it checked and a summary line; exits non-zero when
clang-tidy failed on any file. The caller decides what counts as a finding (scripts/tidy.sh).
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys

TIDY = "clang-tidy-14"


def preprocessed(entry):
    """The translation unit as the compiler sees it, or None when it cannot be produced."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c":
            continue
        out.append(a)
    out += ["-E", "-P", "-o", "-"]
    r = subprocess.run(out, cwd=entry["directory"], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def main():
    build_dir, pattern = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cache = os.environ.get("CB_TIDY_CACHE", os.path.expanduser("~/.cache/credbroker-tidy"))
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        entries = [e for e in json.load(f) if re.search(pattern, e["file"])]
    with open(os.path.join(root, ".clang-tidy"), "rb") as f:
        config = f.read()
    version = subprocess.run([TIDY, "--version"], capture_output=True).stdout

    def check(entry):
        source = entry["file"]
        text = preprocessed(entry)
        key = None
        if text is not None:
            h = hashlib.sha256()
            for part in (version, config, os.path.relpath(source, root).encode(),
                         text.replace(root.encode(), b"@ROOT@")):
                h.update(hashlib.sha256(part).digest())
            key = os.path.join(cache, h.hexdigest())
            if os.path.exists(key):
                return source, 0, "", True
        r = subprocess.run([TIDY, "-p=" + build_dir, "-quiet", source], capture_output=True,
                           text=True)
        output = r.stdout + r.stderr
        clean = r.returncode == 0 and not re.search(r"(warning|error):", output)
        if clean and key is not None:
            open(key, "w").close()
        return source, r.returncode, output, False

    failed, cached = 0, 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for source, rc, output, hit in pool.map(check, entries):
            cached += hit
            if output:
                sys.stdout.write(output)
            if rc != 0:
                failed += 1
                print("%s: clang-tidy exit %d" % (source, rc))
    print("tidy_cached: %d files, %d clean from the cache, %d checked" %
          (len(entries), cached, len(entries) - cached))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
