"""playground.downloads: failures become sentences that name no file on the server."""

from pathlib import Path

import pytest

from playground import downloads


def test_a_download_that_cannot_be_stored_names_no_server_path(monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "0")

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", no_network)
    with pytest.raises(ValueError) as caught:
        downloads.download("https://example.invalid/weights.pth", Path("/proc/nope/hub/weights.pth"))
    assert "could not be stored" in str(caught.value) and "/proc" not in str(caught.value)


def test_a_failed_download_says_why_without_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(downloads.OFFLINE_ENV, "0")

    def refused(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "secret"))

    monkeypatch.setattr(downloads.urllib.request, "urlopen", refused)
    with pytest.raises(ValueError, match="the download failed") as caught:
        downloads.download("https://example.invalid/weights.pth", tmp_path / "weights.pth")
    assert str(tmp_path) not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # the partial file is gone
