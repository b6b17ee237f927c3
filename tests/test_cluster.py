"""The workflow on a real SLURM cluster with profiles/slurm.

The cluster is the single-node one of scripts/slurm/start.sh (Debian's munge,
slurmctld, slurmd and slurmdbd with MariaDB, on loopback), started for these
tests and stopped after them unless it was already running. The tests skip
only where it cannot start: without root, or without its packages and apt-get.
"""
import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from helpers.workflow import REPO, TINY_WORKFLOW, WorkflowCopy, snakemake_command, workflow_rules

pytestmark = pytest.mark.cluster

SCRIPTS = REPO / "scripts" / "slurm"
# The tiny end-to-end run of the whole-workflow test, with the training job's cluster resources.
TINY_CONFIG = {**TINY_WORKFLOW, "train": {**TINY_WORKFLOW["train"], "mem_mb": 4000, "runtime": 30}}
# The profile as users run it, but job states are checked 1 s (not 40 s) after a
# submission or a finished job: the test's jobs take seconds.
SLURM_RUN = ("--workflow-profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "1",
             "--seconds-between-status-checks", "1")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")
# Names that differ between two trainings: event files (named by time, host and pid) and
# the snapshots kept (the best epochs).
TRAINING_NAMES = [(re.compile(r"events\.out\.tfevents\.[^/]*$"), "events.out.tfevents.*"),
                  (re.compile(r"^(results/training/[^/]+/snapshots)/[^/]*\.h5$"), r"\1/*.h5")]


def cluster_running(conf):
    return conf.exists() and subprocess.run(["scontrol", "ping"], env={**os.environ, "SLURM_CONF": str(conf)},
                                            capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def slurm():
    """The environment that points SLURM's commands and Snakemake at the test cluster."""
    state = Path(os.environ.get("DETFLOW_SLURM_DIR", "/tmp/detflow-slurm"))
    was_running = shutil.which("scontrol") is not None and cluster_running(state / "etc" / "slurm.conf")
    started = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=900)
    if started.returncode == 2:  # this machine cannot host it, e.g. apt-get cannot reach the registry
        pytest.skip(started.stderr.strip().splitlines()[-1])
    assert started.returncode == 0, f"the test cluster did not start:\n{started.stderr[-4000:]}"
    conf = re.fullmatch(r"export SLURM_CONF=(\S+)", started.stdout.strip()).group(1)
    # root's default account in the cluster's accounting, as a user would name theirs
    yield {"SLURM_CONF": conf, "SBATCH_ACCOUNT": "root"}
    if not was_running:
        subprocess.run([str(SCRIPTS / "stop.sh")], check=True, timeout=300)


def tiny_workflow(root):
    workflow = WorkflowCopy(root)
    workflow.set_config(**TINY_CONFIG)
    return workflow


def slurm_command(env, *args):
    return subprocess.run(list(args), env={**os.environ, **env}, capture_output=True, text=True, check=True,
                          timeout=60).stdout


def sacct_jobs(env, run_ids):
    """(rule, state, allocated TRES, SLURM job id) of every job of these Snakemake runs, from accounting."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    output = slurm_command(env, "sacct", "-X", "--parsable2", "--noheader", "--starttime", since,
                           "--name", ",".join(run_ids), "--format=JobIDRaw,State,AllocTRES,Comment")
    jobs = []
    for line in output.splitlines():
        job_id, state, tres, comment = line.split("|")
        jobs.append((rule_of_comment(comment), state.split()[0], tres, job_id))  # "CANCELLED by 0"
    return jobs


def rule_of_comment(comment):
    """The executor comments every job `rule_<name>` or `rule_<name>_wildcards_<values>`."""
    match = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", comment)
    assert match, comment
    return match.group(1)


def remote_jobs(workflow):
    """{rule: jobs} that a run of the workflow submits to SLURM: every job but those of local rules."""
    rules = workflow_rules(workflow.root)
    return Counter({rule: count for rule, count in workflow.dry_run_jobs().items() if not rules[rule]["local"]})


def start_snakemake(workflow, log_path, *args, env=None):
    """Snakemake in the background, its output going to ``log_path``."""
    with open(log_path, "w") as log:
        return subprocess.Popen(snakemake_command() + ["--cores", "2", *args], cwd=workflow.root, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def run_and_cancel(workflow, rule, env, timeout=900):
    """Run the workflow on SLURM and scancel the job of ``rule`` once it runs; (returncode, output, SLURM job id)."""
    log_path = workflow.root / "cancelled-run.log"
    process = start_snakemake(workflow, log_path, *SLURM_RUN, env=env)
    try:
        deadline = time.monotonic() + timeout
        job_id = None
        while job_id is None:
            assert process.poll() is None, f"Snakemake ended before rule {rule} ran:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"rule {rule} did not start:\n{log_path.read_text()[-4000:]}"
            time.sleep(0.5)
            run_id = RUN_ID.search(log_path.read_text())
            if run_id:
                queue = slurm_command(env, "squeue", "--noheader", "--name", run_id.group(1), "--format=%i|%k|%T")
                job_id = next((line.split("|")[0] for line in queue.splitlines()
                               if rule_of_comment(line.split("|")[1]) == rule and line.split("|")[2] == "RUNNING"),
                              None)
        slurm_command(env, "scancel", job_id)
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, log_path.read_text(), job_id


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def produced_by(workflow, files):
    """{file: rule} for files under results/, from Snakemake's summary of the finished workflow."""
    summary = workflow.snakemake("--summary").stdout
    outputs = {}
    for line in summary.splitlines():
        fields = line.split("\t")
        if len(fields) > 2 and fields[0].startswith("results/"):
            outputs[fields[0]] = fields[2]
    owners = {}
    for path in files:
        owner = next((outputs[output] for output in sorted(outputs, key=len, reverse=True)
                      if path == output or path.startswith(output + "/")), None)
        owners[path] = owner
    return owners


def result_files(root):
    """Files under results/ by relative path, with TRAINING_NAMES by kind."""
    files = {}
    for path in sorted((root / "results").rglob("*")):
        if path.is_file() and not path.name.startswith(".snakemake"):  # Snakemake's own markers
            name = str(path.relative_to(root))
            for pattern, kind in TRAINING_NAMES:
                name = pattern.sub(kind, name)
            files[name] = path
    return files


def same_shape(local_file, cluster_file):
    """What two results computed from different trained weights share: CSV header, JSON keys, being non-empty."""
    if local_file.suffix == ".csv":
        return next(csv.reader(io.StringIO(local_file.read_text()))) == next(
            csv.reader(io.StringIO(cluster_file.read_text())))
    if local_file.suffix == ".json":
        return json_keys(json.loads(local_file.read_text())) == json_keys(json.loads(cluster_file.read_text()))
    return local_file.stat().st_size > 0 and cluster_file.stat().st_size > 0


def json_keys(value):
    if isinstance(value, dict):
        return {key: json_keys(item) for key, item in value.items()}
    return type(value).__name__


def daemon_pids(state):
    """{daemon: pid} of the test cluster's daemons that are alive, by their pid files."""
    pids = {}
    for pid_file in sorted((state / "run").glob("*.pid")):
        pid = int(pid_file.read_text().strip())
        if Path(f"/proc/{pid}").exists():
            pids[pid_file.stem] = pid
    return pids


def test_start_is_idempotent_and_stop_ends_the_cluster_and_only_it(slurm, tmp_path):
    state = Path(slurm["SLURM_CONF"]).parent.parent
    daemons = {"munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"}
    before = daemon_pids(state)
    assert set(before) == daemons
    again = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=300, check=True)
    assert again.stdout.strip() == f"export SLURM_CONF={slurm['SLURM_CONF']}"
    assert daemon_pids(state) == before  # nothing restarted

    # stop.sh for another state folder whose pid files name this cluster's daemons and a
    # process of someone else: it signals none of them.
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        other = tmp_path / "other-cluster"
        (other / "run").mkdir(parents=True)
        for daemon, pid in before.items():
            (other / "run" / f"{daemon}.pid").write_text(f"{pid}\n")
        (other / "run" / "slurmd.pid").write_text(f"{stranger.pid}\n")
        subprocess.run([str(SCRIPTS / "stop.sh")], env={**os.environ, "DETFLOW_SLURM_DIR": str(other)},
                       check=True, timeout=120)
        assert stranger.poll() is None and daemon_pids(state) == before
    finally:
        stranger.kill()

    subprocess.run([str(SCRIPTS / "stop.sh")], check=True, timeout=300)
    assert daemon_pids(state) == {}
    assert not Path("/run/slurm/conf").exists()
    subprocess.run([str(SCRIPTS / "stop.sh")], check=True, timeout=60)  # stopping twice is fine
    restarted = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=300)
    assert restarted.returncode == 0, restarted.stderr
    assert set(daemon_pids(state)) == daemons
    assert Path("/run/slurm/conf").resolve() == state / "etc"
    assert "localhost" in slurm_command(slurm, "sinfo", "--noheader", "--format=%n %t")


def test_cluster_daemons_listen_on_loopback_only(slurm):
    ports = {int(re.search(rf"^{key}=(\d+)$", Path(slurm["SLURM_CONF"]).read_text(), re.MULTILINE).group(1))
             for key in ("SlurmctldPort", "SlurmdPort", "AccountingStoragePort")}
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) in ports:  # 0A: LISTEN
                listening.setdefault(int(port, 16), set()).add(address)
    assert set(listening) == ports
    assert all(addresses == {"0100007F"} for addresses in listening.values()), listening  # 127.0.0.1


def test_profiles_ask_one_gpu_for_training_as_the_rule_does():
    """One GPU per training job, each variant its own job: how many run at once is the cluster's
    (or, locally, --resources gpu=N's) to decide."""
    rules = workflow_rules()
    assert rules["train"]["resources"]["gpu"] == 1
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert "gpu=1" in default["resources"]  # two training jobs never share a workstation's GPU
    profile_text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(profile_text)
    assert profile["executor"] == "slurm" and profile["set-resources"]["train"]["gpu"] == 1
    assert 'gres: "gpu:1"' in profile_text  # the documented alternative for --gres clusters


def test_slurm_profile_resources_as_snakemake_reads_them(tmp_path):
    """Account and partition from sbatch's own variables; memory and runtime defaults; the training job's own."""
    workflow = tiny_workflow(tmp_path / "project")
    env = {"SBATCH_ACCOUNT": "project42", "SBATCH_PARTITION": "short"}
    plan = workflow.snakemake("--workflow-profile", "profiles/slurm", "--dry-run", env=env).stdout
    resources = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", plan):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        line = re.search(r"^\s+resources: (.*)$", block, re.MULTILINE)
        if rule and line:
            resources[rule.group(1)] = dict(item.split("=", 1) for item in line.group(1).split(", "))
    assert resources["extract_frames"]["slurm_account"] == "project42"
    assert resources["extract_frames"]["slurm_partition"] == "short"
    assert resources["extract_frames"]["mem_mb"] == "2000" and resources["extract_frames"]["runtime"] == "30"
    assert resources["train"]["gpu"] == "1"
    assert resources["train"]["mem_mb"] == str(TINY_CONFIG["train"]["mem_mb"])
    assert resources["train"]["runtime"] == str(TINY_CONFIG["train"]["runtime"])


def test_unknown_partition_is_reported_by_name(slurm, tmp_path):
    workflow = tiny_workflow(tmp_path / "project")
    result = workflow.snakemake(*SLURM_RUN, "results/demo/videos/demo_00.mp4", check=False, timeout=300,
                                env={**slurm, "SBATCH_PARTITION": "no_such_partition"})
    assert result.returncode != 0
    assert "invalid partition specified: no_such_partition" in result.stdout
    assert not (workflow.root / "results" / "demo" / "videos" / "demo_00.mp4").exists()


def test_unreachable_cluster_gives_a_clear_message(slurm, tmp_path):
    """A controller and accounting daemon that nobody answers: the run stops, naming the cause."""
    conf = Path(slurm["SLURM_CONF"]).read_text()
    for key in ("SlurmctldPort", "AccountingStoragePort"):
        conf = re.sub(rf"^{key}=\d+$", f"{key}={closed_port()}", conf, flags=re.MULTILINE)
    unreachable = tmp_path / "unreachable" / "slurm.conf"
    unreachable.parent.mkdir()
    unreachable.write_text(conf + "MessageTimeout=3\n")  # SLURM's commands give up sooner than after 10 s
    workflow = tiny_workflow(tmp_path / "project")
    started = time.monotonic()
    result = workflow.snakemake(*SLURM_RUN, "results/demo/videos/demo_00.mp4", check=False, timeout=300,
                                env={"SLURM_CONF": str(unreachable)})
    assert result.returncode != 0
    assert "Unable to contact slurm controller" in result.stdout
    assert time.monotonic() - started < 120


def training_job_times(env, run_ids):
    """{variant: (start, end)} of the COMPLETED training jobs of these Snakemake runs, from accounting."""
    since = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    output = slurm_command(env, "sacct", "-X", "--parsable2", "--noheader", "--starttime", since,
                           "--name", ",".join(run_ids), "--format=Comment,State,Start,End,AllocTRES")
    times = {}
    for line in output.splitlines():
        comment, state, start, end, tres = line.split("|")
        variant = re.fullmatch(r"rule_train_wildcards_(.+)", comment)
        if variant and state == "COMPLETED":
            assert "gres/gpu=1" in tres, tres  # each training job has its own GPU
            times[variant.group(1)] = (datetime.fromisoformat(start), datetime.fromisoformat(end))
    return times


@pytest.mark.slow
def test_two_variants_train_at_the_same_time_on_slurm(slurm, tmp_path):
    """Two training variants of the tiny workflow, one CPU and one GPU each, on the two-CPU, two-GPU test
    cluster: their SLURM jobs run at the same time (their start and end times in sacct overlap)."""
    workflow = tiny_workflow(tmp_path / "project")
    variants = {"small": {"threads": 1}, "wider": {"threads": 1, "feature_size": 24}}
    workflow.set_config(train={**TINY_CONFIG["train"], "mem_mb": 3000, "variants": variants})
    run = workflow.snakemake(*SLURM_RUN, "results/model/best.json", env=slurm, timeout=1500)
    times = training_job_times(slurm, RUN_ID.findall(run.stdout))
    assert sorted(times) == ["small", "wider"]
    (small_start, small_end), (wider_start, wider_end) = times["small"], times["wider"]
    overlap = min(small_end, wider_end) - max(small_start, wider_start)
    shortest = min(small_end - small_start, wider_end - wider_start)
    assert overlap > shortest / 2, times  # they ran side by side, not one after the other
    best = json.loads((workflow.root / "results" / "model" / "best.json").read_text())
    assert [item["variant"] for item in best["variants"]] == ["small", "wider"]


@pytest.mark.slow
def test_tiny_workflow_on_slurm_survives_scancel_and_matches_a_local_run(slurm, tmp_path, request):
    on_slurm = tiny_workflow(tmp_path / "on_slurm")
    expected = remote_jobs(on_slurm)
    # The local run of the same configuration, meanwhile: the SLURM runs mostly wait.
    local = tiny_workflow(tmp_path / "local")
    local_run = start_snakemake(local, tmp_path / "local.log")
    request.addfinalizer(local_run.kill)
    assert expected["train"] == 1 and sum(expected.values()) > 10

    # The scheduler kills the training job: reported as failed, with its SLURM id.
    returncode, output, cancelled = run_and_cancel(on_slurm, "train", slurm)
    assert returncode != 0
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in output
    assert "Error in rule train" in output

    # The next run reruns it and finishes the workflow.
    rerun = on_slurm.snakemake(*SLURM_RUN, env=slurm, timeout=1500)
    assert on_slurm.dry_run_jobs() == {}

    # Every job of the workflow ran as a SLURM job: one COMPLETED accounting record each, the
    # cancelled training job besides, and the training jobs got their GPU.
    jobs = sacct_jobs(slurm, RUN_ID.findall(output) + RUN_ID.findall(rerun.stdout))
    assert Counter(rule for rule, state, _, _ in jobs if state == "COMPLETED") == expected
    assert [(rule, state) for rule, state, _, job in jobs if job == cancelled] == [("train", "CANCELLED")]
    assert all("gres/gpu=1" in tres for rule, _, tres, _ in jobs if rule == "train")

    # The same outputs as a local run of the same configuration: identical up to the trained
    # weights; what training produces and everything computed from it has the same shape.
    assert local_run.wait(timeout=1500) == 0, (tmp_path / "local.log").read_text()[-6000:]
    local_files, cluster_files = result_files(local.root), result_files(on_slurm.root)
    assert sorted(local_files) == sorted(cluster_files)
    from_weights = set(local.dry_run_jobs("--forcerun", "train"))
    owners = produced_by(local, local_files)
    identical = [name for name in local_files if owners[name] and owners[name] not in from_weights]
    assert len(identical) > 50 and any(name.startswith("results/voc/") for name in identical)
    for name in identical:
        local_bytes = local_files[name].read_bytes().replace(bytes(local.root), b"<workflow>")
        cluster_bytes = cluster_files[name].read_bytes().replace(bytes(on_slurm.root), b"<workflow>")
        assert local_bytes == cluster_bytes, f"{name} differs between the local and the SLURM run"
    for name in set(local_files) - set(identical):
        assert same_shape(local_files[name], cluster_files[name]), name
