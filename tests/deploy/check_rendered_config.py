#!/usr/bin/env python3
"""Feeds the broker configuration that a rendered chart (or kustomize overlay) ships to the real
`credbroker --check-config`, at the paths the pod would see.

The configuration names files inside the pod (mounted Secrets, the projected token, TLS files) and
the broker checks that they are readable. So this script builds, in a temp dir, the file tree the
StatefulSet's volumes would produce (placeholder contents, never real keys), and runs the broker in
a bubblewrap sandbox (no network) in which that tree is mounted where the pod mounts it.

  check_rendered_config.py RENDERED.yaml --credbroker build/dev/services/broker/credbroker

Exits 0 when every StatefulSet/Deployment's configuration passes, 1 otherwise (with the broker's
own message, which names the field and line).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

CONFIG_ARG = "--config"


def placeholder(path, name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"placeholder for {name}\n")


def materialize(root, volume, mount_path, configmaps):
    """Creates what `volume` would put at `mount_path` (relative to `root`)."""
    target = os.path.join(root, mount_path.lstrip("/"))
    os.makedirs(target, exist_ok=True)
    if "configMap" in volume:
        data = configmaps.get(volume["configMap"]["name"])
        items = volume["configMap"].get("items")
        if data is None:
            # Not shipped by this release (e.g. kube-root-ca.crt): placeholders for its items.
            for item in items or []:
                placeholder(os.path.join(target, item["path"]), item["key"])
            return
        for key, value in data.items():
            path = key
            for item in items or []:
                if item["key"] == key:
                    path = item["path"]
            with open(os.path.join(target, path), "w") as f:
                f.write(value)
    elif "secret" in volume:
        items = volume["secret"].get("items")
        if items:
            for item in items:
                placeholder(os.path.join(target, item["path"]), item["key"])
        else:
            # A whole Secret: a TLS pair, or a provider's key folder (read only at run time).
            for name in ("tls.crt", "tls.key", "ca.crt"):
                placeholder(os.path.join(target, name), name)
    elif "projected" in volume:
        for source in volume["projected"].get("sources", []):
            if "serviceAccountToken" in source:
                placeholder(os.path.join(target, source["serviceAccountToken"]["path"]), "token")
            for kind in ("configMap", "secret"):
                for item in source.get(kind, {}).get("items", []):
                    placeholder(os.path.join(target, item["path"]), item["key"])


def check_workload(workload, configmaps, credbroker):
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": {}}
    container = next(c for c in spec["containers"] if c["name"] == "credbroker")
    args = container.get("args", [])
    if CONFIG_ARG not in args:
        print(f"{name}: the credbroker container has no {CONFIG_ARG} argument", file=sys.stderr)
        return False
    config_path = args[args.index(CONFIG_ARG) + 1]
    root = tempfile.mkdtemp(prefix="credbroker-pod-")
    try:
        binds = []
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                print(f"{name}: volumeMount {mount['name']} has no volume", file=sys.stderr)
                return False
            materialize(root, volume, mount["mountPath"], configmaps)
            binds.append(mount["mountPath"])
        # Top-level folders the mounts live under (/etc/credbroker, /var/...), bound read-write.
        tops = sorted({"/" + p.strip("/").split("/")[0] for p in binds})
        tops = [t for t in tops if t != "/etc"] + sorted(
            {"/etc/" + p.strip("/").split("/")[1] for p in binds if p.startswith("/etc/")})
        cmd = ["bwrap", "--unshare-net", "--unshare-pid", "--die-with-parent",
               "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
               "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
               "--dir", "/etc", "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
               "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
               "--ro-bind", os.path.abspath(credbroker), "/opt/credbroker"]
        for top in tops:
            cmd += ["--bind", os.path.join(root, top.lstrip("/")), top]
        cmd += ["/opt/credbroker", "--check-config", config_path]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name}: credbroker --check-config {config_path} failed (exit {r.returncode}):\n"
                  f"{r.stdout}{r.stderr}", file=sys.stderr)
            return False
        print(f"{name}: {r.stdout.strip() or config_path + ': ok'}")
        return True
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--credbroker", required=True)
    args = parser.parse_args()
    with open(args.manifest) if args.manifest != "-" else sys.stdin as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    workloads = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
    if not workloads:
        print(f"{args.manifest}: no StatefulSet or Deployment", file=sys.stderr)
        return 1
    ok = all([check_workload(w, configmaps, args.credbroker) for w in workloads])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
