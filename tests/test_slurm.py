"""The tiny study through a real one-node SLURM cluster (munged, slurmctld and slurmd started on this
machine) with profiles/slurm: the same tables as the local run, and every job a SLURM job with the
rule's threads as its CPUs and, where the config asks for GPUs, a GPU request."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY_CONFIG, compared_tables

SBIN_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
# The default path: the plugin's job step drops every SLURM_* variable (SLURM_CONF too) before its `srun`,
# so a config elsewhere would not reach the step inside each job.
SLURM_DIR = Path("/etc/slurm")
MARK = "# written by tests/test_slurm.py (removed again at the end of the test module)\n"
TOOLS = ("slurmctld", "slurmd", "munged", "munge", "unmunge", "sbatch", "squeue", "scontrol", "sinfo", "scancel")
FAKE_GPUS = ("/dev/null", "/dev/zero")  # gres.conf needs a device file per GPU; nothing opens them
START_TIMEOUT = 60  # seconds until the node must be idle
RUN_TIMEOUT = 3600  # seconds for the whole SLURM run of the tiny config
GPU_RULES = {"train", "ttt"}  # ask for config compute.gpus whatever the variant


def _tool(name):
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def _run(*cmd, check=True, timeout=60, **kw):
    proc = subprocess.run([_tool(cmd[0]) or cmd[0], *cmd[1:]], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def _install_slurm():
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:  # stale package lists
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env, timeout=900)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0 or not all(_tool(t) for t in TOOLS):
        raise RuntimeError(f"apt-get install slurm-wlm munge failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _munge_works():
    enc = subprocess.run([_tool("munge"), "-n"], capture_output=True, timeout=10)
    return enc.returncode == 0 and subprocess.run([_tool("unmunge")], input=enc.stdout, capture_output=True,
                                                  timeout=10).returncode == 0


def _log_tail(path: Path, n=30):
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.is_file() else f"({path} missing)"


def _wait(condition, timeout, what, daemons, logs):
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [name for name, proc in daemons if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            reason = f"{', '.join(dead)} exited" if dead else f"not within {timeout} s"
            details = "\n".join(f"--- {log}\n{_log_tail(log)}" for log in logs)
            raise RuntimeError(f"SLURM test cluster: {what}: {reason}\n{details}")
        time.sleep(0.5)


def _slurm_conf(node_line: str, work: Path) -> str:
    node = re.match(r"NodeName=(\S+)", node_line).group(1)
    node_line = re.sub(r"\s*Gres=\S+", "", node_line)
    return MARK + "\n".join([
        "ClusterName=robustcs-test",
        f"SlurmctldHost={node}",
        "SlurmUser=root",
        "AuthType=auth/munge",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2",
        # finished jobs stay visible to squeue/scontrol for the whole module: the plugin's squeue status
        # checks see every job finish, and the test reads every job's record afterwards
        "MinJobAge=7200",
        f"StateSaveLocation={work / 'state'}",
        f"SlurmdSpoolDir={work / 'spool'}",
        f"SlurmctldPidFile={work / 'slurmctld.pid'}",
        f"SlurmdPidFile={work / 'slurmd.pid'}",
        f"SlurmctldLogFile={work / 'slurmctld.log'}",
        f"SlurmdLogFile={work / 'slurmd.log'}",
        "GresTypes=gpu",
        f"{node_line} Gres=gpu:{len(FAKE_GPUS)} State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
    ]) + "\n"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster (node = this machine, two fake GPUs) for the module; every daemon it
    started is stopped by PID afterwards, and /etc/slurm is restored."""
    if os.geteuid() != 0:
        pytest.skip("a SLURM test cluster needs root (it starts munged, slurmctld and slurmd)")
    if not all(_tool(t) for t in TOOLS):
        if shutil.which("apt-get") is None:
            pytest.skip("slurm-wlm/munge are not installed and apt-get is not available to install them")
        _install_slurm()
    work = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (work / sub).mkdir()
    daemons = []  # (name, Popen) of the daemons started here, stopped in reverse order
    replaced = {}  # /etc/slurm file -> its previous bytes (None: there was none)
    try:
        if not _munge_works():
            key = Path("/etc/munge/munge.key")
            if not key.exists():
                key.parent.mkdir(mode=0o700, exist_ok=True)
                key.write_bytes(os.urandom(1024))
                shutil.chown(key.parent, "munge", "munge")
                shutil.chown(key, "munge", "munge")
                key.chmod(0o400)
            Path("/run/munge").mkdir(mode=0o755, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            with open(work / "munged.out", "w") as out:
                daemons.append(("munged", subprocess.Popen([_tool("munged"), "--foreground"], user="munge",
                                                           group="munge", extra_groups=[], stdout=out,
                                                           stderr=subprocess.STDOUT)))
            _wait(_munge_works, START_TIMEOUT, "munged does not answer", daemons, [work / "munged.out"])

        node_line = _run("slurmd", "-C").stdout.splitlines()[0]
        SLURM_DIR.mkdir(exist_ok=True)
        files = {"slurm.conf": _slurm_conf(node_line, work),
                 "gres.conf": MARK + "".join(f"Name=gpu File={dev}\n" for dev in FAKE_GPUS)}
        for name, text in files.items():
            path = SLURM_DIR / name
            old = path.read_bytes() if path.exists() else None
            replaced[path] = None if old is not None and old.startswith(MARK.encode()) else old  # a stale one of ours
            path.write_text(text)

        logs = [work / "slurmctld.log", work / "slurmd.log", work / "slurmctld.out", work / "slurmd.out"]
        for name in ("slurmctld", "slurmd"):
            with open(work / f"{name}.out", "w") as out:
                daemons.append((name, subprocess.Popen([_tool(name), "-D"], cwd=work, stdout=out,
                                                       stderr=subprocess.STDOUT)))

        def node_idle():
            proc = subprocess.run([_tool("sinfo"), "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10)
            return proc.returncode == 0 and proc.stdout.split() == ["idle"]

        _wait(node_idle, START_TIMEOUT, "the node does not come up idle in sinfo", daemons, logs)
        yield work
    finally:
        if any(name == "slurmctld" for name, _ in daemons):
            def active():  # jobs left over from a failed run: cancelled, so that no job step outlives slurmd
                proc = subprocess.run([_tool("squeue"), "-h", "-t", "PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED",
                                       "-o", "%i"], capture_output=True, text=True, timeout=30)
                return proc.stdout.split() if proc.returncode == 0 else []

            if active():
                subprocess.run([_tool("scancel"), *active()], capture_output=True, timeout=30)
                deadline = time.monotonic() + 60
                while active() and time.monotonic() < deadline:
                    time.sleep(1)
        for _, proc in reversed(daemons):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path, old in replaced.items():
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)


def _jobs() -> dict:
    """{SLURM job id: {field: value}} of every job the controller remembers (scontrol show job -o)."""
    out = _run("scontrol", "show", "job", "-o").stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(m.groups() for m in re.finditer(r"(\S+?)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def _job_threads(output: str) -> dict:
    """{Snakemake job id: threads} from the job blocks Snakemake prints (a threads line only when > 1)."""
    threads = {}
    for block in re.split(r"\n(?=(?:rule|checkpoint) \w+:\n)", output):
        job_id = re.search(r"^\s+jobid: (\d+)$", block, flags=re.M)
        if re.match(r"(?:rule|checkpoint) \w+:\n", block) and job_id:
            count = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
            threads[job_id.group(1)] = int(count.group(1)) if count else 1
    return threads


@pytest.mark.slow
@pytest.mark.long
def test_tiny_run_through_slurm(slurm_cluster, tiny_run, tmp_path):
    # the tiny config, asking for one GPU per network job (the node's GPUs are fake: torch stays on the CPU)
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["compute"]["gpus"] = 1
    config = tmp_path / "tiny_gpu.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order = variant order = table row order
    work = tmp_path / "work"
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-s", str(ROOT / "Snakefile"),
           "--profile", str(ROOT / "profiles" / "slurm"), "--configfile", str(config), "--directory", str(work),
           # short polling (the plugin's default waits 40 s before the first check) and logs of every job kept
           "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"SLURM run failed:\n{output[-6000:]}"

    # the same tables, byte for byte, as the uninterrupted local run
    ours, local = work / "results" / "tables", tiny_run / "results" / "tables"
    names = compared_tables(local)
    assert names and compared_tables(ours) == names
    for name in names:
        assert (ours / name).read_bytes() == (local / name).read_bytes(), f"results/tables/{name} differs"

    # every job but the local ones (the target, summaries, figures: cheap, beside Snakemake) went through SLURM,
    # with its log in the plugin's folder
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):$", output, flags=re.M)
    local = set(re.findall(r"^localrule (\w+):$", output, flags=re.M))
    submitted = re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.$", output, flags=re.M)
    assert rules and len(submitted) == len(rules), (len(submitted), len(rules))
    assert {"all", "summarise_clean", "summarise_shifts", "summarise_findings", "plot_shifts", "plot_ttt"} <= local
    assert all(r == "all" or r.startswith(("summarise_", "plot_")) for r in local), local
    assert not local & set(rules), local & set(rules)
    assert {"train", "reconstruct", "attack", "ttt", "evaluate", "sensitivities", "ingest"} <= set(rules)
    slurm_logs = work / ".snakemake" / "slurm_logs"
    for _, slurm_id, log in submitted:
        log = Path(log)
        assert log.is_file() and log.resolve().is_relative_to(slurm_logs.resolve()) and log.name == f"{slurm_id}.log"
    jobs = _jobs()
    ids = [slurm_id for _, slurm_id, _ in submitted]
    assert len(set(ids)) == len(ids) and set(ids) <= set(jobs)
    assert len({jobs[i]["JobName"] for i in ids}) == 1  # one run: the plugin names every job by its run id
    by_rule = {}
    for i in ids:
        job = jobs[i]
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        rule = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", job["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    assert sorted(by_rule) == sorted(set(rules))
    # CPUs = the job's threads, and the torch jobs ran with the local run's thread counts (bit-identical
    # results need them) ...
    threads = _job_threads(output)
    for job_id, slurm_id, _ in submitted:
        assert jobs[slurm_id]["CPUs/Task"] == str(threads[job_id]), jobs[slurm_id]["Comment"]
    assert {threads[job_id] for job_id, slurm_id, _ in submitted
            if jobs[slurm_id]["Comment"].startswith("rule_train_")} == {cfg["compute"]["threads"]}
    torch_logs = sorted((tiny_run / "results" / "logs").rglob("*.log"))
    torch_threads = re.compile(r"torch \S+ on \w+ with (\d+) CPU threads")
    assert sum(bool(torch_threads.search(log.read_text())) for log in torch_logs) >= 10
    for log in (log for log in torch_logs if torch_threads.search(log.read_text())):  # the torch jobs' logs
        ours_log = work / log.relative_to(tiny_run)  # (the local run may also hold targets outside `all`: readme)
        assert torch_threads.findall(ours_log.read_text()) == torch_threads.findall(log.read_text()), log
    # ... and config compute.gpus as a GPU request (sbatch --gpus) of the network jobs only
    for rule in GPU_RULES:
        assert {job.get("TresPerJob") for job in by_rule[rule]} == {"gres:gpu:1"}, rule
    for rule in ("ingest", "masks", "sensitivities", "evaluate"):
        assert all("gpu" not in job.get("TresPerJob", "") for job in by_rule[rule]), rule
    zero_filled = [job for job in by_rule["reconstruct"] if "_zf_" in job["Comment"] or job["Comment"].endswith("_zf")]
    assert zero_filled and all("gpu" not in job.get("TresPerJob", "") for job in zero_filled)
