"""Artifact store throughput and memory: write and read a NumPy array of 1 MB and 100 MB on the
``local`` store and on the ``s3`` store (moto's S3 server on 127.0.0.1, in its own process),
and the 1 GB streaming figure on ``s3``: peak memory while writing and reading it.

    python -m benchmarks.artifacts              # 1 MB, 100 MB on local and s3, then 1 GB on s3
    python -m benchmarks.artifacts --no-large   # without the 1 GB figure

Every write and every read runs in a process of its own, so its peak memory (``ru_maxrss``)
is its own. "write extra" is the peak above what the process held with the array made (the
array itself is not counted): what writing costs. "read extra" is the peak above the process
before reading, minus the array read back: what reading costs beyond the value itself.
A store that held a second copy of the value would show its size here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1 << 20
SIZES_MB = (1, 100)
LARGE_MB = 1000


def _peak_mib() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss``, which a child starts
    with its parent's peak, it counts only this program's memory)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB on Linux


def _store(kind: str, location: str) -> Any:
    from pipeledger.artifacts.flavors import LocalArtifactStoreConfig, LocalArtifactStoreFlavor
    from pipeledger.artifacts.s3 import S3ArtifactStoreConfig, S3ArtifactStoreFlavor

    if kind == "local":
        return LocalArtifactStoreFlavor().create("bench", LocalArtifactStoreConfig(path=location), Path(location))
    endpoint, bucket = location.split("|")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    config = S3ArtifactStoreConfig(path=f"s3://{bucket}/bench", endpoint_url=endpoint)
    return S3ArtifactStoreFlavor().create("bench", config, Path(tempfile.gettempdir()))


def worker(args: argparse.Namespace) -> None:
    """One write or one read, in this process; prints a JSON object."""
    import numpy as np

    from pipeledger.artifacts.materializers import default_registry
    from pipeledger.testing.artifact_store import new_id, record_of, step_dir

    store = _store(args.kind, args.location)
    registry = default_registry()  # imports pandas and pyarrow: before measuring
    store.exists(store.artifact_uri(step_dir(store), "warm-up", new_id()))  # the S3 client is made now
    if args.phase == "write":
        value = np.ones(args.mb * MiB // 8, dtype=np.float64)
        before = _peak_mib()
        artifact_id = new_id()
        uri = store.artifact_uri(step_dir(store), "array", artifact_id)
        start = time.perf_counter()
        written = store.write(value, uri, artifact_id, registry)
        seconds = time.perf_counter() - start
        record = record_of(written, artifact_id)
        result = {"seconds": seconds, "extra_mib": _peak_mib() - before, "record": record.__dict__}
    else:
        from pipeledger.models import ArtifactRecord

        fields = json.loads(args.record)
        fields["created_at"] = None
        record = ArtifactRecord(**fields)
        before = _peak_mib()
        start = time.perf_counter()
        value = store.read(record, registry)
        seconds = time.perf_counter() - start
        assert value.nbytes == args.mb * MiB
        result = {"seconds": seconds, "extra_mib": _peak_mib() - before - value.nbytes / MiB}
    print(json.dumps(result, default=str))


def _run(kind: str, location: str, phase: str, mb: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.artifacts", "--worker", phase, kind, location, str(mb)]
    if record is not None:
        command.append(json.dumps(record, default=str))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} of {mb} MB on {kind} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _moto() -> tuple[subprocess.Popen[str], str]:
    code = (
        "import sys, time\n"
        "from moto.server import ThreadedMotoServer\n"
        "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start()\n"
        "print('%s:%s' % s.get_host_and_port(), flush=True)\n"
        "time.sleep(1e9)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    return process, f"http://{process.stdout.readline().strip()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-large", action="store_true", help="skip the 1 GB streaming figure")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        phase, kind, location, mb, *rest = args.worker
        worker(
            argparse.Namespace(phase=phase, kind=kind, location=location, mb=int(mb), record=rest[0] if rest else "")
        )
        return
    import s3fs

    moto, endpoint = _moto()
    try:
        s3fs.S3FileSystem(key="bench", secret="bench", endpoint_url=endpoint).mkdir("bench")
        cases = [(kind, mb) for mb in SIZES_MB for kind in ("local", "s3")]
        if not args.no_large:
            cases.append(("s3", LARGE_MB))
        header = f"{'store':6} {'size':>8} {'write MB/s':>11} {'read MB/s':>10}"
        print(f"{header} {'write extra MiB':>16} {'read extra MiB':>15}")
        with tempfile.TemporaryDirectory() as local:
            for kind, mb in cases:
                location = local if kind == "local" else f"{endpoint}|bench"
                wrote = _run(kind, location, "write", mb)
                read = _run(kind, location, "read", mb, wrote["record"])
                print(
                    f"{kind:6} {mb:>5} MB {mb / wrote['seconds']:>11.1f} {mb / read['seconds']:>10.1f} "
                    f"{wrote['extra_mib']:>16.1f} {read['extra_mib']:>15.1f}",
                    flush=True,
                )
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
