"""``cleanplate serve``: every startup mistake is one line and exit status 2, before anything serves."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cleanplate.cli.app import main
from cleanplate.serve import ServeConfig, create_app, is_loopback


def _run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *args])
    err = capsys.readouterr().err
    return exc.value.code, err


def _one_line_error(code: int, err: str, words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanplate: error: "), err
    assert words in lines[0], err
    assert "Traceback" not in err


def test_refuses_a_public_address_without_a_token(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLEANPLATE_TOKEN", raising=False)
    code, err = _run(capsys, "--host", "0.0.0.0", "--state-dir", str(tmp_path))
    _one_line_error(code, err, "without a token")


def test_refuses_an_empty_token(capsys, tmp_path: Path) -> None:
    code, err = _run(capsys, "--token", " ", "--state-dir", str(tmp_path))
    _one_line_error(code, err, "empty")


def test_port_in_use(capsys, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, err = _run(capsys, "--port", str(port), "--state-dir", str(tmp_path), "--model", "classical")
    _one_line_error(code, err, f"port {port} on 127.0.0.1 is already in use")


def test_address_not_on_this_machine(capsys, tmp_path: Path) -> None:
    code, err = _run(capsys, "--host", "192.0.2.1", "--token", "t0ken", "--port", "0", "--state-dir", str(tmp_path))
    _one_line_error(code, err, "not an address of this machine")


def test_state_folder_in_use(capsys, tmp_path: Path) -> None:
    app = create_app(ServeConfig(model="classical", device="cpu", state_dir=tmp_path))
    try:
        code, err = _run(capsys, "--port", "0", "--state-dir", str(tmp_path), "--model", "classical")
    finally:
        app.state.server.close()
    _one_line_error(code, err, "another cleanplate server uses")


def test_model_that_does_not_load(capsys, tmp_path: Path) -> None:
    code, err = _run(capsys, "--port", "0", "--state-dir", str(tmp_path / "s"), "--model", str(tmp_path / "no.pth"))
    assert code == 2 and err.startswith("cleanplate: error: ") and len(err.strip().splitlines()) == 1, err


def test_listed_in_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "serve" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("myhost.local", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
