"""Finding dataset files: explicit path, $SEQLAB_DATA_DIR, cache, verified download."""
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from seqlab.data import ChecksumError, DatasetFile, DatasetNotFoundError, download, find_dataset_file
from seqlab.data.fetch import cache_dir

CONTENT = ("id\tdocument\tlabel\n" + "1\t좋아요\t1\n" * 5000).encode()
DIGEST = hashlib.sha256(CONTENT).hexdigest()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves CONTENT at /data.txt, honouring `Range: bytes=N-` unless told not to."""

    honour_range = True
    requests: list = []

    def do_GET(self):
        type(self).requests.append((self.path, self.headers.get("Range")))
        if self.path != "/data.txt":
            self.send_error(404)
            return
        start = 0
        if self.honour_range and self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            if start >= len(CONTENT):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(CONTENT) - start))
        self.end_headers()
        self.wfile.write(CONTENT[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.requests = []
    RangeHandler.honour_range = True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    """Isolated data and cache folders for every test."""
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEQLAB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def spec(url, digest=DIGEST, **extra):
    return DatasetFile("demo/data.txt", url, (digest,), **extra)


class TestDownload:
    def test_downloads_verifies_and_caches(self, server, folders):
        path = find_dataset_file(spec(server + "/data.txt"), progress=False)
        assert path == folders / "cache" / "demo" / "data.txt"
        assert path.read_bytes() == CONTENT
        assert not path.with_name("data.txt.part").exists()
        # Second call: found in the cache, no new request.
        assert find_dataset_file(spec(server + "/data.txt")) == path
        assert len(RangeHandler.requests) == 1

    def test_checksum_mismatch_is_an_error_and_leaves_no_file(self, server, folders):
        with pytest.raises(ChecksumError, match=f"sha256 mismatch.*got {DIGEST}, expected 0+"):
            find_dataset_file(spec(server + "/data.txt", digest="0" * 64), progress=False)
        assert list((folders / "cache" / "demo").iterdir()) == []

    def test_resumes_a_partial_download(self, server, folders):
        part = folders / "cache" / "demo" / "data.txt.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(CONTENT[:1000])
        path = find_dataset_file(spec(server + "/data.txt"), progress=False)
        assert path.read_bytes() == CONTENT
        assert RangeHandler.requests == [("/data.txt", "bytes=1000-")]

    def test_restarts_when_the_server_ignores_range(self, server, tmp_path):
        RangeHandler.honour_range = False
        part = tmp_path / "out.txt.part"
        part.write_bytes(b"garbage that must not be kept")
        path = download(server + "/data.txt", tmp_path / "out.txt", (DIGEST,), progress=False)
        assert path.read_bytes() == CONTENT

    def test_complete_part_file_answered_416_is_verified(self, server, tmp_path):
        (tmp_path / "out.txt.part").write_bytes(CONTENT)
        assert download(server + "/data.txt", tmp_path / "out.txt", (DIGEST,)).read_bytes() == CONTENT

    def test_progress_bar_and_file_url(self, tmp_path, capsys):
        source = tmp_path / "source.txt"
        source.write_bytes(CONTENT)
        path = download(source.as_uri(), tmp_path / "copy.txt", (DIGEST,), progress=True)
        assert path.read_bytes() == CONTENT
        assert "copy.txt" in capsys.readouterr().err

    def test_zip_member_is_extracted_and_verified(self, tmp_path, folders):
        archive = tmp_path / "demo.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("data.txt", CONTENT)
            zipped.writestr("_about.txt", "about")
        path = find_dataset_file(spec(archive.as_uri(), archive_member="data.txt"), progress=False)
        assert path.read_bytes() == CONTENT
        assert sorted(p.name for p in path.parent.iterdir()) == ["data.txt"]
        wrong = DatasetFile("demo/other.txt", archive.as_uri(), (DIGEST,), archive_member="other.txt")
        with pytest.raises(DatasetNotFoundError, match="has no member 'other.txt'"):
            find_dataset_file(wrong, progress=False)

    def test_offline_error_names_file_address_and_where_to_put_it(self, folders):
        url = "http://127.0.0.1:9/data.txt"  # discard port: connection refused
        with pytest.raises(DatasetNotFoundError) as error:
            find_dataset_file(spec(url), progress=False)
        message = str(error.value)
        assert "demo/data.txt" in message and url in message
        assert "put it in $SEQLAB_DATA_DIR" in message and "pass path=" in message
        assert str(folders / "data") in message

    def test_download_false_never_touches_the_network(self, server):
        with pytest.raises(DatasetNotFoundError, match="download=False"):
            find_dataset_file(spec(server + "/data.txt"), download=False)
        assert RangeHandler.requests == []

    def test_http_404_is_a_not_found_error(self, server):
        with pytest.raises(DatasetNotFoundError, match="HTTP Error 404"):
            find_dataset_file(spec(server + "/missing.txt"), progress=False)


class TestSearchOrder:
    def write(self, path: Path, content: bytes = CONTENT) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    def test_explicit_path_wins_and_is_not_checksummed(self, folders):
        self.write(folders / "data" / "demo" / "data.txt")
        mine = self.write(folders / "mine.txt", b"my own version")
        assert find_dataset_file(spec("unused://"), path=mine) == mine
        with pytest.raises(ChecksumError):
            find_dataset_file(spec("unused://"), path=mine, verify=True)

    def test_explicit_folder_is_searched(self, folders):
        inside = self.write(folders / "elsewhere" / "data.txt")
        assert find_dataset_file(spec("unused://"), path=folders / "elsewhere") == inside
        (folders / "empty").mkdir()
        with pytest.raises(DatasetNotFoundError, match="is a folder without demo/data.txt"):
            find_dataset_file(spec("unused://"), path=folders / "empty")

    def test_missing_explicit_path_is_an_error_not_a_fallback(self, folders):
        self.write(folders / "data" / "demo" / "data.txt")
        with pytest.raises(DatasetNotFoundError, match="nope.txt does not exist"):
            find_dataset_file(spec("unused://"), path=folders / "nope.txt")

    def test_data_dir_before_cache_with_or_without_subfolder(self, folders):
        self.write(folders / "cache" / "demo" / "data.txt")
        flat = self.write(folders / "data" / "data.txt")
        assert find_dataset_file(spec("unused://")) == flat
        nested = self.write(folders / "data" / "demo" / "data.txt")
        assert find_dataset_file(spec("unused://")) == nested

    def test_cache_when_data_dir_unset(self, folders, monkeypatch):
        monkeypatch.delenv("SEQLAB_DATA_DIR")
        cached = self.write(folders / "cache" / "demo" / "data.txt")
        assert find_dataset_file(spec("unused://")) == cached

    def test_corrupt_copy_in_data_dir_is_an_error_not_a_fallback(self, folders):
        self.write(folders / "cache" / "demo" / "data.txt")
        self.write(folders / "data" / "demo" / "data.txt", CONTENT[:-1])
        with pytest.raises(ChecksumError, match="corrupt or another version.*pass path="):
            find_dataset_file(spec("unused://"))

    def test_extracted_folder_stands_in_for_the_archive(self, folders):
        folder = folders / "data" / "aclImdb"
        folder.mkdir(parents=True)
        archive_spec = DatasetFile("aclImdb_v1.tar.gz", "unused://", ("0" * 64,), extracted_folder="aclImdb")
        assert find_dataset_file(archive_spec) == folder

    def test_digests_are_validated(self, tmp_path):
        with pytest.raises(ValueError, match="64 lowercase hex"):
            DatasetFile("x.txt", "unused://", (DIGEST[:10],))
        assert DatasetFile("x.txt", "unused://", DIGEST).sha256 == (DIGEST,)
        source = tmp_path / "s.txt"
        source.write_bytes(CONTENT)
        with pytest.raises(ChecksumError):  # one digest as a plain string is compared whole
            download(source.as_uri(), tmp_path / "d.txt", DIGEST[:-1] + "0", progress=False)

    def test_default_cache_folder(self, monkeypatch):
        monkeypatch.delenv("SEQLAB_CACHE_DIR")
        assert cache_dir() == Path.home() / ".cache" / "seqlab"
