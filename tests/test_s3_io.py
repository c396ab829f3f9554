"""Inputs and outputs through fsspec: a run that reads its inputs from and writes its
results to a local S3-compatible server (moto, started here on 127.0.0.1) decides
exactly what the same run on local disk decides."""
import gzip
import os
import socket

import orjson
import pytest

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
fsspec = pytest.importorskip("fsspec")

from thresher.config import load_recipe  # noqa: E402
from thresher.demo import write_demo_corpus  # noqa: E402
from thresher.executor.runner import run_recipe  # noqa: E402
from thresher.inspect import iter_sink  # noqa: E402

BUCKET = "thresher-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch, tmp_path):
    """A moto S3 server of our own; stopped through its handle at teardown."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": endpoint}})
    monkeypatch.setenv("THRESHER_WORK_DIR", str(tmp_path / "work"))
    try:
        fsys = fsspec.filesystem("s3", skip_instance_cache=True)
        fsys.mkdir(BUCKET)
        yield fsys
    finally:
        import urllib.request
        # moto keeps its buckets per process, not per server: forget them before the next test
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        server.stop()


def _corpus(root):
    """Demo files plus the same lines as .gz / .zst / Parquet, and a JSON array."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard
    paths = write_demo_corpus(str(root), n_docs=400)
    web = (root / "web_zh.jsonl").read_bytes()
    lines = web.splitlines(keepends=True)
    (root / "more").mkdir()
    (root / "more" / "a.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[:60]), mtime=0))
    (root / "more" / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines[60:120])))
    rows = [orjson.loads(x) for x in lines[120:200]]
    pq.write_table(pa.Table.from_pylist(rows), str(root / "more" / "c.parquet"), row_group_size=25)
    (root / "more" / "d.json").write_bytes(orjson.dumps(rows[:20]))
    (root / "more" / "e.jsonl.tmp-deadhost-1").write_bytes(b"half a file a killed writer left")
    return paths


def _upload(fsys, root, prefix):
    for dp, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dp, f), root)
            fsys.put_file(os.path.join(dp, f), f"{BUCKET}/{prefix}/{rel}")


def _recipe(inp, out):
    return load_recipe("default", {
        "output.dir": out, "executor.workers": 2, "executor.shard_bytes": "16KB",
        "inputs": [{"path": f"{inp}/web_zh.jsonl", "name": "web"},
                   {"path": f"{inp}/news_gb18030.txt", "name": "news"},
                   {"path": f"{inp}/sft_*.jsonl", "name": "sft"},
                   {"path": f"{inp}/more", "name": "more"}],
        "stages": ["invisible_char_remover", "whitespace_normalizer", "spam_filter", "exact_dedup"]})


def _decisions(run_dir):
    kept = sorted(r["id"] for r in iter_sink(run_dir, "kept"))
    rejected = sorted((r["id"], r["meta"]["reject"]["stage"], r["meta"]["reject"]["reason"])
                      for r in iter_sink(run_dir, "rejected"))
    quarantined = sorted((q["file"], q["offset"]) for q in iter_sink(run_dir, "quarantine"))
    return kept, rejected, quarantined


def test_s3_run_decides_like_the_local_run(s3, tmp_path):
    data = tmp_path / "data"
    _corpus(data)
    _upload(s3, data, "in")

    local = run_recipe(_recipe(str(data), str(tmp_path / "local-run")))
    remote = run_recipe(_recipe(f"s3://{BUCKET}/in", f"s3://{BUCKET}/out"))

    # the remote output holds the published run: sinks, manifests, summary
    assert s3.exists(f"{BUCKET}/out/manifest.json") and s3.exists(f"{BUCKET}/out/kept/manifest.json")
    assert not s3.exists(f"{BUCKET}/out/state")  # the executor's scratch stays in the local work dir
    pulled = tmp_path / "pulled"
    s3.get(f"{BUCKET}/out/", str(pulled), recursive=True)
    assert pulled.joinpath("summary.txt").read_text() == (tmp_path / "local-run" / "summary.txt").read_text()

    a, b = _decisions(str(tmp_path / "local-run")), _decisions(str(pulled))
    assert a == b
    kept, rejected, quarantined = a
    assert len(kept) > 100 and len(rejected) > 10
    assert {r[2] for r in rejected} >= {"exact_dup"}
    assert local["counts"] == remote["counts"]
    assert local["sinks"] == remote["sinks"]  # same bytes, same sha256 per shard
    man = orjson.loads(pulled.joinpath("manifest.json").read_bytes())
    assert man["conserved"] and man["bytes_conserved"]
    # every file was read (the temp leftover was not), with origins relative to the input root
    assert sorted(man["inputs"]) == sorted(orjson.loads(
        (tmp_path / "local-run" / "manifest.json").read_bytes())["inputs"])
    assert "more/c.parquet" in man["inputs"] and not any(".tmp-" in k for k in man["inputs"])
    print(f"s3 parity: kept {len(kept)}, rejected {len(rejected)}, quarantined {len(quarantined)}, "
          f"counts {remote['counts']}")

    # a second start of the finished remote run resumes from its work dir: same result
    again = run_recipe(_recipe(f"s3://{BUCKET}/in", f"s3://{BUCKET}/out"))
    assert again["counts"] == remote["counts"] and again["fingerprint"] == remote["fingerprint"]


def test_missing_s3_input_is_an_error(s3, tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        run_recipe(_recipe(f"s3://{BUCKET}/nothing-here", str(tmp_path / "run")))
