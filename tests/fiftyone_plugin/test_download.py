"""``fiftyone plugins download`` for real: the repository as GitHub serves its archives (a zip
of ``coralseg-main/...``), served over loopback HTTP, downloaded by FiftyOne's own command
into an empty plugins folder, then an operator run from the downloaded copy."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fiftyone_plugin.conftest import PLUGIN, REPO, make_reef

FIFTYONE = str(Path(sys.executable).with_name("fiftyone"))

RUN_FROM_COPY = """
import json, sys
import fiftyone as fo
import fiftyone.operators as foo
dataset = fo.load_dataset(sys.argv[1])
operator = foo.get_operator("@coralseg/coralseg/export_masks")
result = foo.execute_operator(operator.uri, dict(dataset=dataset),
                              params=dict(out=sys.argv[2], taxonomy="families"))
print(json.dumps({"module": sys.modules[type(operator).__module__].__file__,
                  "images": result.result["images"]}))
"""


@pytest.fixture
def served_archive(tmp_path: Path):
    """``git archive`` of HEAD as ``coralseg-main.zip``, served on a loopback port."""
    folder = tmp_path / "www"
    folder.mkdir()
    archive = folder / "coralseg-main.zip"
    subprocess.run(
        ["git", "archive", "--format=zip", "--prefix=coralseg-main/", "-o", str(archive), "HEAD"],
        cwd=REPO,
        check=True,
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield archive, f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.slow  # about 70 s: three fiftyone commands and a second Python process
@pytest.mark.data_guard
def test_download_the_archive_and_run_an_operator_from_the_copy(
    served_archive, fiftyone, tmp_path: Path
) -> None:
    archive, url = served_archive
    with zipfile.ZipFile(archive) as opened:
        manifests = [n for n in opened.namelist() if n.endswith("fiftyone.yml")]
    assert manifests == ["coralseg-main/fiftyone.yml"]  # exactly one plugin in the tree

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    env = {**os.environ, "FIFTYONE_PLUGINS_DIR": str(plugins)}
    run = functools.partial(subprocess.run, env=env, capture_output=True, text=True, timeout=300)
    downloaded = run([FIFTYONE, "plugins", "download", url])
    assert downloaded.returncode == 0, downloaded.stderr
    found = sorted(plugins.rglob("fiftyone.yml"))
    assert len(found) == 1
    copy = found[0].parent
    assert (copy / "fiftyone_plugin" / "operators" / "evaluate.py").is_file()

    listed = run([FIFTYONE, "plugins", "list"])
    assert PLUGIN in listed.stdout
    ensured = run([FIFTYONE, "plugins", "requirements", PLUGIN, "--ensure"])
    assert ensured.returncode == 0, ensured.stdout + ensured.stderr

    dataset = make_reef(fiftyone, tmp_path, count=2)
    dataset.persistent = True  # seen by the other process
    try:
        out = tmp_path / "prepared"
        ran = run([sys.executable, "-c", RUN_FROM_COPY, dataset.name, str(out)], cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr[-3000:]
        report = json.loads(ran.stdout.strip().splitlines()[-1])
        assert Path(report["module"]).resolve().is_relative_to(copy.resolve())
        assert report["images"] == 2 and (out / "manifest.json").is_file()
    finally:
        dataset.delete()
