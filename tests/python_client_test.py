#!/usr/bin/python3
"""Runs the README's Python example (examples/python_client.py) against the real broker."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

KEY = "lmnfl_pyexample.0123456789abcdef"
CONFIG = """
server: {listen: "127.0.0.1:0", metrics_listen: "127.0.0.1:0", data_dir: data, shutdown_grace: 1s}
sources: [{name: local, file: {root: keys}}]
# A fake key: nothing to probe, and a probe would reach lumenfall's real host (tests stay on
# loopback).
providers: [{name: lumenfall, probe: {disabled: true}}]
policy:
  rules: [{identities: [py-example], providers: ["*"]}]
identity:
  static_tokens: [{service: py-example, token: py-example-token-0123456789}]
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="credbroker-py-")
    broker = None
    try:
        gen = os.path.join(work, "gen")
        os.makedirs(gen)
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                        "-I", os.path.join(args.source_dir, "proto"),
                        "--python_out=" + gen, "--grpc_python_out=" + gen,
                        os.path.join(args.source_dir, "proto/credbroker/v1/lease.proto")],
                       check=True)
        os.makedirs(os.path.join(work, "keys/lumenfall"))
        with open(os.path.join(work, "keys/lumenfall/v1"), "w") as f:
            f.write(KEY + "\n")
        with open(os.path.join(work, "broker.yaml"), "w") as f:
            f.write(CONFIG)
        port_file = os.path.join(work, "ports")
        log = open(os.path.join(work, "broker.log"), "w")
        broker = subprocess.Popen([args.broker, "--config", os.path.join(work, "broker.yaml"),
                                   "--port-file", port_file], stdout=log, stderr=log)
        deadline = time.time() + 30
        ports = {}
        while time.time() < deadline and "metrics" not in ports:
            if os.path.exists(port_file):
                for line in open(port_file):
                    k, _, v = line.strip().partition("=")
                    ports[k] = v
            if broker.poll() is not None:
                raise SystemExit("broker exited early: " + open(log.name).read())
            time.sleep(0.05)
        env = dict(os.environ, PYTHONPATH=gen, CREDBROKER_ADDR="127.0.0.1:" + ports["grpc"],
                   CREDBROKER_TOKEN="py-example-token-0123456789")
        out = subprocess.run([sys.executable,
                              os.path.join(args.source_dir, "examples/python_client.py")],
                             env=env, capture_output=True, text=True, timeout=60)
        print(out.stdout)
        print(out.stderr, file=sys.stderr)
        checks = [
            (out.returncode == 0, "example exits 0"),
            ("leased lumenfall key v1" in out.stdout, "example leased the key"),
            ("(1 renewals)" in out.stdout, "example renewed"),
            ("unknown provider -> NOT_FOUND" in out.stdout, "example saw NOT_FOUND"),
            (KEY not in out.stdout + out.stderr, "example printed no key material"),
        ]
        failed = [name for ok, name in checks if not ok]
        passed = len(checks) - len(failed)
        for name in failed:
            print("FAILED: " + name)
        print(f"{passed} passed, {len(failed)} failed")
        return 1 if failed else 0
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
