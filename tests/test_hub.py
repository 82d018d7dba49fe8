"""Zoo names resolve to real weights: download from the model-zoo host (a local server here), verify, convert once."""

import concurrent.futures
import dataclasses
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch
from test_convert_mmaction import hf_to_mmaction_state

from hf_i3d import I3DConfig, I3DForVideoClassification, zoo
from hf_i3d.hub import DownloadError, IntegrityError, download, resolve_model
from hf_i3d.zoo import kinetics400_labels

CONFIG_NAME = "i3d_r50_32x2x1_100e_kinetics400_rgb"


class ZooHost:
    """A local stand-in for download.openmmlab.com that serves files from a folder and counts requests."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        root.mkdir(parents=True, exist_ok=True)
        host = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server API)
                host.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def zoo_host(tmp_path):
    host = ZooHost(tmp_path / "host")
    yield host
    host.close()


@pytest.fixture
def small_r50_entry(tmp_path, zoo_host, monkeypatch):
    """Publish a small mmaction2-format checkpoint the way mmaction2 does (name ends in its sha256 prefix) and point
    the i3d-r50-kinetics400 zoo entry at it; the package cache goes to a temporary folder."""
    torch.manual_seed(0)
    model = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=400)).eval()
    staging = tmp_path / "staging.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": hf_to_mmaction_state(model)}, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    file_name = f"{CONFIG_NAME}_20200614-{digest[:8]}.pth"
    path = f"/mmaction/recognition/i3d/{CONFIG_NAME}/{file_name}"
    (zoo_host.root / path.lstrip("/")).parent.mkdir(parents=True)
    staging.rename(zoo_host.root / path.lstrip("/"))
    entry = zoo.ZOO["i3d-r50-kinetics400"]
    patched = dataclasses.replace(
        entry,
        checkpoint_url=f"https://download.openmmlab.com{path}",
        config={**entry.config, "base_channels": 4},
    )
    monkeypatch.setitem(zoo.ZOO, entry.name, patched)
    monkeypatch.setenv("HF_I3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_I3D_MIRROR", zoo_host.url)
    monkeypatch.chdir(tmp_path)
    return patched, model, path


def test_from_pretrained_downloads_verifies_converts_once(small_r50_entry, zoo_host, tmp_path):
    entry, original, path = small_r50_entry
    model = I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400").eval()
    assert zoo_host.requests == [path]
    x = torch.randn(1, 8, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(model(x).logits, original(x).logits, rtol=0, atol=1e-6)
    assert model.config.id2label[0] == "abseiling" and model.config.zoo_name == "i3d-r50-kinetics400"
    cached = tmp_path / "cache" / "models" / "i3d-r50-kinetics400"
    assert (cached / "model.safetensors").is_file() and (cached / "README.md").is_file()

    # second call (by alias, through the config class too): no request, same folder
    again = I3DForVideoClassification.from_pretrained(CONFIG_NAME)
    assert I3DConfig.from_pretrained("i3d-r50-kinetics400").zoo_name == "i3d-r50-kinetics400"
    assert resolve_model("i3d-r50-kinetics400") == str(cached)
    assert zoo_host.requests == [path]
    torch.testing.assert_close(again.classifier.weight, model.classifier.weight)


def test_processes_asking_at_once_convert_once(small_r50_entry, zoo_host, tmp_path):
    """Ranks of `accelerate launch` resolving a zoo name on first use: one downloads and converts, the rest wait."""
    entry, original, path = small_r50_entry
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: resolve_model("i3d-r50-kinetics400", progress=False), range(3)))
    cached = str(tmp_path / "cache" / "models" / "i3d-r50-kinetics400")
    assert folders == [cached] * 3 and zoo_host.requests == [path]
    loaded = I3DForVideoClassification.from_pretrained(cached)
    torch.testing.assert_close(loaded.classifier.weight, original.classifier.weight, rtol=0, atol=0)


def test_a_local_folder_of_that_name_wins(small_r50_entry, zoo_host, tmp_path):
    torch.manual_seed(1)
    I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=3)).save_pretrained(
        tmp_path / "i3d-r50-kinetics400"
    )
    model = I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400")
    assert model.config.num_labels == 3 and zoo_host.requests == []


def test_hash_mismatch_is_rejected_and_removed(small_r50_entry, zoo_host, tmp_path):
    entry, _, path = small_r50_entry
    served = zoo_host.root / path.lstrip("/")
    served.write_bytes(served.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError) as error:
        I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400")
    message = str(error.value)
    assert f"{served.name}: sha256 starts with" in message
    assert "but the file name says" in message and "the download was deleted" in message
    downloads = tmp_path / "cache" / "downloads"
    assert list(downloads.iterdir()) == []
    assert not (tmp_path / "cache" / "models" / "i3d-r50-kinetics400").exists()


def test_unreachable_host_names_the_url_and_the_manual_route(small_r50_entry, monkeypatch):
    entry, _, path = small_r50_entry
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("HF_I3D_MIRROR", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DownloadError) as error:
        I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400")
    message = str(error.value)
    assert f"Could not download http://127.0.0.1:{closed_port}{path}" in message
    assert f"Download the checkpoint by hand from {entry.checkpoint_url}" in message
    assert "hf-i3d convert mmaction CHECKPOINT --preset i3d-r50-kinetics400 --output" in message


def test_full_sha256_is_checked_when_recorded(tmp_path, zoo_host):
    (zoo_host.root / "weights.bin").write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert download(f"{zoo_host.url}/weights.bin", tmp_path / "d", sha256=good).read_bytes() == b"abc"
    with pytest.raises(IntegrityError, match=f"weights.bin: sha256 is {good}, expected {'0' * 64}"):
        download(f"{zoo_host.url}/weights.bin", tmp_path / "e", sha256="0" * 64)
    assert not (tmp_path / "e" / "weights.bin").exists()


def test_names_that_are_not_zoo_names_pass_through(tmp_path):
    assert resolve_model("facebook/some-model") == "facebook/some-model"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_the_model_card_usage_snippet_runs(small_r50_entry, zoo_host, tmp_path):
    import re

    from _video_utils import write_video

    from hf_i3d.modelcard import zoo_card_text

    video = tmp_path / "clip.mp4"
    write_video(video, 40, width=96, height=64)
    snippet = re.search(r"```python\n(.*?)```", zoo_card_text("i3d-r50-kinetics400"), re.S).group(1)
    printed = []
    namespace = {"print": printed.append}
    exec(snippet.replace('"video.mp4"', repr(str(video))), namespace)  # noqa: S102 - our own card's snippet
    (result,) = printed
    assert len(result) == 5 and all(r["label"] in kinetics400_labels() for r in result)
    assert zoo_host.requests  # the name was resolved through the (stand-in) model-zoo host
