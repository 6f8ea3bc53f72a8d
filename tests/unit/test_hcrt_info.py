#!/usr/bin/env python3
"""hcrt-info: the JSON report, the plain report, and the command line (its --help).

Usage: test_hcrt_info.py PATH/TO/hcrt-info   (run by meson with test_env: HCRT_BACKEND_PATH, HCRT_BUILD_DIR)
       test_hcrt_info.py PATH/TO/hcrt-info --mpi MPIRUN [MPIRUN ARGS...]
           runs it as a 3-rank job: one report, from rank 0, with every rank's device
"""
import json
import os
import subprocess
import sys

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(exe, *args, env_extra=None):
    env = dict(os.environ)
    # Standalone: the test must not depend on a launcher's environment leaking in.
    for k in list(env):
        if k.startswith("OMPI_COMM_WORLD") or k.startswith("PMIX_"):
            del env[k]
    env.update(env_extra or {})
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)


def backend(report, name):
    for b in report["backends"]:
        if b["name"] == name:
            return b
    return None


def main_mpi(exe, launcher):
    cmd = [*launcher, "-x", "HCRT_SIM_DEVICES=2", "-np", "3", exe, "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr}")
    report = json.loads(p.stdout)  # fails if more than one rank printed
    mpi = report["mpi"]
    check(mpi["initialized"] is True and mpi["world_size"] == 3, f"mpi section under mpirun: {mpi}")
    ranks = report["ranks"]
    check([r["rank"] for r in ranks] == [0, 1, 2], f"ranks {ranks}")
    for r in ranks:
        check(r["backend"] == "sim" and r["index"] == r["local_rank"] % 2 and r["bound_cpus"] != "",
              f"rank {r['rank']}: {r}")
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("hcrt-info under mpirun: all checks passed")
    return 0


def main():
    exe = sys.argv[1]
    if len(sys.argv) > 3 and sys.argv[2] == "--mpi":
        return main_mpi(exe, sys.argv[3:])
    build = os.environ.get("HCRT_BUILD_DIR", "")
    sim_env = {"HCRT_SIM_DEVICES": "3", "HCRT_TIMEOUT": "42"}

    # ---- JSON ----
    p = run(exe, "--json", env_extra=sim_env)
    check(p.returncode == 0, f"hcrt-info --json exited {p.returncode}: {p.stderr}")
    report = json.loads(p.stdout)
    for key in ("version", "backends", "topology", "mpi", "config"):
        check(key in report, f"JSON has no key '{key}'")

    lib = report["version"]["library"]
    check(len(lib.split(".")) == 3 and all(x.isdigit() for x in lib.split(".")), f"version '{lib}'")

    for b in report["backends"]:
        for key in ("name", "status", "reason", "path", "devices"):
            check(key in b, f"backend {b.get('name')} has no '{key}'")
        check(b["status"] in ("loaded", "unavailable", "broken", "filtered"), f"backend status {b['status']}")
        if b["status"] != "loaded":
            check(b["reason"] != "", f"backend {b['name']} is {b['status']} without a reason")
            check(b["devices"] == [], f"backend {b['name']} is {b['status']} but lists devices")

    for b in report["backends"]:
        check(isinstance(b.get("compute"), bool) and "compute_detail" in b, f"backend {b['name']}: no compute keys")
        if b["status"] != "loaded":
            check(b["compute"] is False, f"backend {b['name']} is {b['status']} but claims compute")
    cpu = backend(report, "cpu")
    sim = backend(report, "sim")
    for b in (cpu, sim):
        check(b is not None and b["compute"] is True and b["compute_detail"] == "",
              f"backend {b and b['name']}: the compute extension is missing: {b}")
    check(cpu is not None and cpu["status"] == "loaded" and len(cpu["devices"]) == 1, f"cpu backend: {cpu}")
    check(sim is not None and sim["status"] == "loaded" and len(sim["devices"]) == 3,
          f"sim backend with HCRT_SIM_DEVICES=3: {sim}")
    if sim:
        for i, d in enumerate(sim["devices"]):
            check(d["index"] == i and d["backend"] == "sim", f"sim device {i}: {d}")
            check(d["total_memory"] > 0 and d["name"] != "", f"sim device {i} properties: {d}")
            check(d["local_cpus"] != "", f"sim device {i} has no local cpus")
            check(not d["host_addressable"], f"sim device {i} claims host-addressable memory")
    if cpu:
        check(cpu["devices"][0]["host_addressable"], "the host device is not host-addressable")

    # Plugins built here must load and say why they have no device (no GPU on this machine); where a GPU
    # is present they are loaded instead, with devices.
    for name in ("cuda", "hip"):
        so = os.path.join(build, "backends", name, f"libhcrt-backend-{name}.so")
        if not os.path.exists(so):
            print(f"note: {so} not built; not checking the {name} backend")
            continue
        b = backend(report, name)
        check(b is not None, f"{name} plugin is built but hcrt-info does not list it")
        if b is None:
            continue
        if b["status"] == "loaded":
            check(len(b["devices"]) > 0, f"{name} loaded without devices")
        else:
            check(b["status"] == "unavailable" and b["reason"].strip() != "",
                  f"{name}: status {b['status']}, reason '{b['reason']}' (expected unavailable with a reason)")

    # Without HCRT_DEVICE, rank 0 of 1 gets device 0 of the first accelerator backend with devices (sim
    # here; a GPU backend listed before it where a GPU is present).
    accel = [b["name"] for b in report["backends"] if b["name"] != "cpu" and b["status"] == "loaded" and b["devices"]]
    expect = accel[0] if accel else "cpu"
    sel = report.get("selected", {})
    check(sel.get("backend") == expect and sel.get("index") == 0, f"selected device {sel}, expected {expect}:0")

    topo = report["topology"]
    check(topo["pus"] >= 1 and 1 <= topo["cores"] <= topo["pus"] and topo["numa_nodes"] >= 1,
          f"topology counts {topo}")
    check(topo["bound_cpus"] != "", "topology has no binding")
    ndev = sum(len(b["devices"]) for b in report["backends"])
    check(len(topo["device_locality"]) == ndev, f"device locality lists {len(topo['device_locality'])} of {ndev}")

    mpi = report["mpi"]
    check(mpi["library"] != "" and mpi["library"] != "(unknown)", f"MPI library '{mpi['library']}'")
    check(mpi["initialized"] is False, "standalone hcrt-info initialised MPI")
    check(isinstance(mpi["device_aware"], bool), "mpi.device_aware is not a boolean")

    cfg = report["config"]
    t = cfg.get("HCRT_TIMEOUT")
    check(t is not None, "config has no HCRT_TIMEOUT")
    if t:
        check(t["default"] == "300" and t["value"] == "42" and t["is_set"], f"HCRT_TIMEOUT entry {t}")
        check(len(t["help"]) > 10, "HCRT_TIMEOUT has no help")
    check(cfg.get("HCRT_SIM_DEVICES", {}).get("value") == "3", "HCRT_SIM_DEVICES value")
    for name, e in cfg.items():
        check(name.startswith("HCRT_") and e["help"] != "" and "default" in e, f"config entry {name}: {e}")

    # ---- filter: HCRT_BACKENDS=cpu leaves sim out and the host selected ----
    p = run(exe, "--json", env_extra={"HCRT_BACKENDS": "cpu"})
    check(p.returncode == 0, f"HCRT_BACKENDS=cpu: exit {p.returncode}: {p.stderr}")
    if p.returncode == 0:
        r = json.loads(p.stdout)
        s = backend(r, "sim")
        check(s is None or s["status"] == "filtered", f"HCRT_BACKENDS=cpu: sim is {s and s['status']}")
        check(r["selected"]["backend"] == "cpu", f"HCRT_BACKENDS=cpu: selected {r['selected']}")

    # ---- plain text mentions every backend and every section ----
    p = run(exe, env_extra=sim_env)
    check(p.returncode == 0, f"hcrt-info exited {p.returncode}: {p.stderr}")
    for b in report["backends"]:
        check(b["name"] in p.stdout, f"plain output does not mention backend {b['name']}")
        if b["reason"]:
            check(b["reason"].splitlines()[0] in p.stdout, f"plain output lacks {b['name']}'s reason")
    check(p.stdout.count("compute: yes") >= 2, "plain output does not show cpu's and sim's compute")
    for word in ("Backends:", f"Selected device: {expect}:0", "Topology:", "MPI:", "Configuration:",
                 "HCRT_TIMEOUT=42", mpi["library"].splitlines()[0]):
        check(word in p.stdout, f"plain output lacks '{word}'")

    # ---- command line ----
    p = run(exe, "--help")
    check(p.returncode == 0 and "--json" in p.stdout, f"--help: exit {p.returncode}")
    p = run(exe, "--bogus")
    check(p.returncode == 2 and "usage" in p.stderr and p.stdout == "", f"--bogus: exit {p.returncode}")
    p = run(exe, "extra")
    check(p.returncode == 2, f"a stray argument: exit {p.returncode}")

    # ---- init failure is reported, exit 1 ----
    p = run(exe, env_extra={"HCRT_TIMEOUT": "soon"})
    check(p.returncode == 1 and "HCRT_TIMEOUT" in p.stderr, f"bad HCRT_TIMEOUT: exit {p.returncode}, {p.stderr!r}")
    # A bad variable still gets the report (backends and devices) and the report points at the variable.
    for var, value in (("HCRT_DEVICE", "sim:9"), ("HCRT_BACKENDS", "zzz"), ("HCRT_DEVICE", "nosuch")):
        p = run(exe, "--json", env_extra={**sim_env, var: value})
        what = f"{var}={value}"
        check(p.returncode == 1 and var in p.stderr, f"{what}: exit {p.returncode}, {p.stderr!r}")
        try:
            r = json.loads(p.stdout)
        except ValueError:
            check(False, f"{what}: no JSON report: {p.stdout!r}")
            continue
        err = r["init_error"]
        check(err is not None and var in err["message"] and f"{var}='{value}'" in err["ignored"],
              f"{what}: init_error {err}")
        check(backend(r, "sim") is not None and backend(r, "sim")["status"] == "loaded"
              and len(backend(r, "sim")["devices"]) == 3, f"{what}: sim not listed: {r['backends']}")
        p = run(exe, env_extra={**sim_env, var: value})
        check(p.returncode == 1 and "Configuration error" in p.stdout and f"{var}='{value}'" in p.stdout
              and "sim device 2" in p.stdout, f"{what}: plain report {p.returncode}: {p.stdout[:400]!r}")
    p = run(exe, "--json", env_extra=sim_env)
    check(p.returncode == 0 and json.loads(p.stdout)["init_error"] is None, "init_error not null on success")

    # Run from the build tree, the tools find the build tree's plugins without HCRT_BACKEND_PATH.
    env = {k: v for k, v in os.environ.items() if k != "HCRT_BACKEND_PATH"}
    p = subprocess.run([exe, "--json"], env={**env, **sim_env}, capture_output=True, text=True, timeout=60)
    sim = backend(json.loads(p.stdout), "sim") if p.returncode == 0 else None
    check(sim is not None and sim["status"] == "loaded" and sim["path"].startswith(os.environ["HCRT_BUILD_DIR"]),
          f"without HCRT_BACKEND_PATH: exit {p.returncode}, sim {sim}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("hcrt-info: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
