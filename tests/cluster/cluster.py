"""tests/cluster/cluster.py - a cluster of fake nodes on one machine, for the meson suite `cluster`.

    with Cluster(nodes=3, slots=2, slurm=True) as c:   # or c = Cluster(...); c.up(); ...; c.down()
        c.head(["mpirun", "--hostfile", c.hostfile, ...])       # a command in the head node
        c.sbatch(script, ["--nodes=2"])                           # a batch job on the Slurm cluster

Each node is a network namespace with its own address (10.77.0.1N on a bridge in the head namespace
10.77.0.1), and every process started on it runs in a private UTS namespace whose hostname is the node's
name and a private mount namespace where the node's own directories are mounted over /dev/shm (its
node-local storage and Open MPI's shared memory) and over `nodetmp` (Slurm's TmpFS), with TMPDIR pointing
at its own temporary directory. The file system is otherwise shared: the test's directory is the cluster's
shared file system. The pid namespace is shared too, so a test can kill any process of a node by pid.

Names: the namespaces are hc<PID>h (head) and hc<PID>n1..N (nodes), PID being this process's: runs of the
suite on one machine never collide, and a run killed before its teardown is recognised by its dead PID
and cleared by the next (kill_stale). The bridge, the addresses and the Slurm ports live inside the
namespaces, so they never collide either.

With slurm=True: munged (its own key and socket), slurmctld in the head node and one slurmd per node,
configured for short intervals (cred_expire 5 s: a requeued job starts again ~10 s later). Teardown kills
every process of every namespace (daemons, jobs, ranks) by pid, deletes the namespaces and the directory.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SUBNET = "10.77.0.0/24"
SKIP = 77


def log(msg):
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, timeout=60, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stdout.strip()}")
    return p


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


def namespaces():
    p = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def ns_pids(ns):
    p = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_ns(ns):
    """SIGKILLs every process of namespace ns, until none is left (a dying parent may fork once more)."""
    for _ in range(50):
        pids = [p for p in ns_pids(ns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def kill_stale():
    """Clears the namespaces and directories of earlier runs whose process is gone."""
    owners = {}
    for ns in namespaces():
        m = re.fullmatch(r"hc(\d+)(h|n\d+)", ns)
        if m:
            owners.setdefault(int(m.group(1)), []).append(ns)
    for pid, nss in owners.items():
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        log(f"clearing the namespaces of a dead run (pid {pid}): {' '.join(nss)}")
        for ns in nss:
            kill_ns(ns)
            sh(["ip", "netns", "del", ns], check=False)
    tmp = tempfile.gettempdir()
    for d in os.listdir(tmp):
        m = re.fullmatch(r"hcrt-cluster-(\d+)-.*", d)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            shutil.rmtree(os.path.join(tmp, d), ignore_errors=True)


def have_slurm():
    return all(shutil.which(x) for x in ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol"))


def ensure_slurm():
    """Installs Debian's slurm-wlm and munge when missing (CI machines start without them)."""
    if have_slurm():
        return
    log("installing slurm-wlm and munge (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if os.geteuid() != 0:
        skip("Slurm is not installed and installing it needs root: apt-get install slurm-wlm munge")
    p = sh(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], check=False, timeout=600, env=env)
    if p.returncode != 0:
        sh(["apt-get", "update", "-qq"], check=False, timeout=600, env=env)
        p = sh(["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"], check=False, timeout=600, env=env)
    if p.returncode != 0 or not have_slurm():
        skip(f"Slurm is not installed and apt-get could not install it: {p.stdout.strip()[-500:]}")


SLURM_CONF = """# A Slurm cluster of fake nodes (tests/cluster/cluster.py); everything lives under {s}
ClusterName=hcrt
SlurmctldHost={head}(10.77.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={s}/munge.socket,cred_expire=5
StateSaveLocation={s}/state
SlurmdSpoolDir={s}/spool.%n
SlurmctldPidFile={s}/slurmctld.pid
SlurmdPidFile={s}/slurmd.%n.pid
SlurmctldLogFile={s}/slurmctld.log
SlurmdLogFile={s}/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
TmpFS={nodetmp}
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
"""


class Cluster:
    def __init__(self, nodes=3, slots=2, slurm=False):
        self.n, self.slots, self.slurm = nodes, slots, slurm
        self.prefix = f"hc{os.getpid()}"
        self.head_ns = self.prefix + "h"
        self.nodes = [f"{self.prefix}n{i}" for i in range(1, nodes + 1)]
        self.dir = None
        self.env = dict(os.environ)

    # ---- bring-up and teardown -----------------------------------------------------------------------

    def up(self):
        if os.geteuid() != 0:
            skip("network namespaces need root (CAP_NET_ADMIN)")
        for tool in ("ip", "nsenter", "unshare"):
            if not shutil.which(tool):
                skip(f"{tool} is missing (apt-get install iproute2 util-linux)")
        kill_stale()
        if self.slurm:
            ensure_slurm()
        probe = sh(["ip", "netns", "add", self.head_ns], check=False)
        if probe.returncode != 0:
            skip(f"cannot create a network namespace (no CAP_NET_ADMIN?): {probe.stdout.strip()}")
        # From here on anything created must be torn down, whatever happens.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _on_signal(self, sig, frame):
        log(f"signal {sig}: tearing the cluster down")
        self.down()
        sys.exit(128 + sig)

    def _up(self):
        t0 = time.monotonic()
        self.dir = tempfile.mkdtemp(prefix=f"hcrt-cluster-{os.getpid()}-")
        os.chmod(self.dir, 0o755)
        h = self.head_ns
        sh(["ip", "-n", h, "link", "set", "lo", "up"])
        sh(["ip", "-n", h, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", h, "addr", "add", "10.77.0.1/24", "dev", "br0"])
        sh(["ip", "-n", h, "link", "set", "br0", "up"])
        os.makedirs(os.path.join(self.dir, "nodetmp"))
        os.makedirs(os.path.join(self.dir, "shared"))
        for i, ns in enumerate(self.nodes, 1):
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", h, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh(["ip", "-n", h, "link", "set", f"v{i}", "master", "br0"])
            sh(["ip", "-n", h, "link", "set", f"v{i}", "up"])
            sh(["ip", "-n", ns, "addr", "add", f"10.77.0.{10 + i}/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            for sub in ("shm", "tmp"):
                os.makedirs(self.node_dir(ns, sub))
        d = self.dir
        # onnode NODE CMD...: CMD on fake node NODE (its network, hostname, /dev/shm, TMPDIR, nodetmp).
        self.onnode = os.path.join(d, "onnode")
        with open(self.onnode, "w") as f:
            f.write(f"""#!/bin/sh
# onnode NODE CMD...: runs CMD on fake node NODE (tests/cluster/cluster.py)
ns=$1; shift
exec nsenter --net=/run/netns/"$ns" unshare --uts --mount sh -c '
hostname "$0"
mount --bind "{d}/nodes/$0/shm" /dev/shm
mount --bind "{d}/nodes/$0/tmp" "{d}/nodetmp"
export TMPDIR="{d}/nodes/$0/tmp"
exec "$@"' "$ns" "$@"
""")
        # Open MPI's launch agent in place of ssh: "agent HOST CMD" runs the shell string CMD on HOST.
        self.agent = os.path.join(d, "agent")
        with open(self.agent, "w") as f:
            f.write(f"""#!/bin/sh
# plm_rsh_agent for the fake nodes: "agent NODE COMMAND..." (tests/cluster/cluster.py)
host=$1; shift
exec {self.onnode} "$host" sh -c "$*"
""")
        for p in (self.onnode, self.agent):
            os.chmod(p, 0o755)
        self.hostfile = os.path.join(d, "hostfile")
        with open(self.hostfile, "w") as f:
            f.write("".join(f"{ns} slots={self.slots}\n" for ns in self.nodes))
        if self.slurm:
            self._slurm_up()
        log(f"{self.n} nodes up in {time.monotonic() - t0:.2f} s: {' '.join(self.nodes)} (head {h}, dir {d})")

    def _slurm_up(self):
        s = os.path.join(self.dir, "slurm")
        for sub in ["state"] + [f"spool.{ns}" for ns in self.nodes]:
            os.makedirs(os.path.join(s, sub))
        conf = os.path.join(s, "slurm.conf")
        with open(conf, "w") as f:
            f.write(SLURM_CONF.format(s=s, head=self.head_ns, nodetmp=os.path.join(self.dir, "nodetmp")))
            for i, ns in enumerate(self.nodes, 1):
                f.write(f"NodeName={ns} NodeAddr=10.77.0.{10 + i} CPUs={self.slots} State=UNKNOWN\n")
            f.write(f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP "
                    "OverSubscribe=NO\n")
        self.env["SLURM_CONF"] = conf
        key = os.path.join(s, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        # munged, slurmctld in the head namespace (so the teardown finds them there), slurmd on each node.
        sh(["nsenter", f"--net=/run/netns/{self.head_ns}", "munged", f"--socket={s}/munge.socket",
            f"--key-file={key}", f"--pid-file={s}/munged.pid", f"--log-file={s}/munged.log",
            f"--seed-file={s}/munged.seed"], env=self.env)
        for _ in range(100):
            if os.path.exists(f"{s}/munge.socket"):
                break
            time.sleep(0.05)
        sh(["nsenter", f"--net=/run/netns/{self.head_ns}", "unshare", "--uts", "sh", "-c",
            f'hostname {self.head_ns}; exec slurmctld -f "{conf}" -i'], env=self.env)
        for ns in self.nodes:
            sh([self.onnode, ns, "slurmd", "-f", conf, "-N", ns], env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = self.head(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
            states = dict(line.split() for line in p.stdout.splitlines() if len(line.split()) == 2)
            if len(states) == self.n and all(v == "idle" for v in states.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Slurm nodes did not become idle: {p.stdout}\n{self.slurm_logs()}")

    def slurm_logs(self, lines=30):
        out = []
        s = os.path.join(self.dir or "", "slurm")
        for name in sorted(os.listdir(s)) if os.path.isdir(s) else []:
            if name.endswith(".log"):
                with open(os.path.join(s, name), errors="replace") as f:
                    tail = f.readlines()[-lines:]
                out.append(f"---- {name} (last {len(tail)} lines)\n" + "".join(tail))
        return "\n".join(out)

    def down(self):
        for ns in [self.head_ns] + self.nodes:
            kill_ns(ns)
        for ns in [self.head_ns] + self.nodes:
            if ns in namespaces():
                sh(["ip", "netns", "del", ns], check=False)
        if self.dir and os.path.isdir(self.dir):
            # Bind mounts lived only in the processes' mount namespaces: the directory is plain files.
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    # ---- using it ------------------------------------------------------------------------------------

    def node_dir(self, node, sub):
        return os.path.join(self.dir, "nodes", node, sub)

    def shared(self, *parts):
        return os.path.join(self.dir, "shared", *parts)

    def head_cmd(self, cmd):
        return ["nsenter", f"--net=/run/netns/{self.head_ns}"] + list(cmd)

    def head(self, cmd, check=True, timeout=120, env=None, cwd=None):
        return sh(self.head_cmd(cmd), check=check, timeout=timeout, env=env or self.env, cwd=cwd)

    def head_popen(self, cmd, env=None, **kw):
        return subprocess.Popen(self.head_cmd(cmd), env=env or self.env, **kw)

    def mpirun_args(self):
        """Open MPI's arguments for a job over the fake nodes (launched from the head node)."""
        return ["--oversubscribe", "--bind-to", "none", "--mca", "plm_rsh_agent", self.agent,
                "--mca", "plm_rsh_no_tree_spawn", "1", "--mca", "oob_tcp_if_include", SUBNET,
                "--mca", "btl", "tcp,self,vader", "--mca", "btl_tcp_if_include", SUBNET,
                "--mca", "btl_vader_single_copy_mechanism", "none"]

    def kill_node(self, node):
        """Every process of the node dies at once (a power loss): ranks, orted or slurmd and slurmstepd."""
        kill_ns(node)

    def cut_link(self, node):
        sh(["ip", "-n", node, "link", "set", "eth0", "down"])

    # ---- Slurm ---------------------------------------------------------------------------------------

    def sbatch(self, script, opts=(), env=None, cwd=None):
        """Submits script from cwd (its SLURM_SUBMIT_DIR); returns the job id."""
        p = self.head(["sbatch", "--parsable"] + list(opts) + [script], env=env, cwd=cwd)
        return p.stdout.strip().split(";")[0]

    def job(self, job_id):
        """scontrol show job as a dict ({} once the job is forgotten)."""
        p = self.head(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        out = {}
        for tok in p.stdout.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                out.setdefault(k, v)
        return out

    def wait_job(self, job_id, timeout=300, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                                                     "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.job(job_id).get("JobState")
            if st in states:
                return st
            time.sleep(0.25)
        return None
