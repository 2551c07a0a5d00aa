"""Healthchecks against real sockets of this test process (127.0.0.1 only)."""

import http.server
import importlib.util
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[3] / "stackyard" / "container" / "healthcheck.py"


def _load():
    spec = importlib.util.spec_from_file_location("healthcheck_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hc = _load()
ME = pathlib.Path("/proc/self/comm").read_text().strip()
NO_SUCH = "no-such-proc-xyz"


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_own_process_is_found_by_name():
    assert os.getpid() in hc.find_pids(ME)
    assert hc.find_pids(NO_SUCH) == []


def test_listen_detects_own_listening_socket(listener):
    port = listener.getsockname()[1]
    assert hc.check_tcp([os.getpid()], {port}, hc.TCP_LISTEN)
    assert "listening" in hc.healthcheck_listen(ME, str(port))
    other = _free_port()
    assert not hc.check_tcp([os.getpid()], {other}, hc.TCP_LISTEN)
    with pytest.raises(hc.Unhealthy, match="not listening"):
        hc.healthcheck_listen(ME, str(other))


def test_listen_after_close_is_unhealthy():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    assert hc.check_tcp([os.getpid()], {port}, hc.TCP_LISTEN)
    s.close()
    assert not hc.check_tcp([os.getpid()], {port}, hc.TCP_LISTEN)


def test_listen_ipv6(listener):
    if not socket.has_ipv6:
        pytest.fail("no IPv6 support on this host")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
    except OSError:
        # no ::1 here (e.g. disabled IPv6): the IPv4 path is covered above
        return
    with s:
        s.listen()
        port = s.getsockname()[1]
        assert hc.check_tcp([os.getpid()], {port}, hc.TCP_LISTEN)


def test_port_detects_established_connection(listener):
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)) as client:
        conn, _ = listener.accept()
        with conn:
            assert hc.check_tcp([os.getpid()], {port}, hc.TCP_ESTABLISHED)
            assert "connected" in hc.healthcheck_port(ME, "1", str(port))
            # the server side has the port locally, not remotely: not a match
            client_port = client.getsockname()[1]
            assert not hc.check_tcp([os.getpid()], {port + 1 if port + 1 != client_port else port + 2},
                                    hc.TCP_ESTABLISHED)
    with pytest.raises(hc.Unhealthy, match="no established connection"):
        hc.healthcheck_port(ME, str(port))


def test_missing_process_is_unhealthy(listener):
    port = str(listener.getsockname()[1])
    for fn, arg in ((hc.healthcheck_listen, port), (hc.healthcheck_port, port),
                    (hc.healthcheck_socket, "/tmp/x.sock")):
        with pytest.raises(hc.Unhealthy, match="no process named"):
            fn(NO_SUCH, arg)


def test_socket_server_side(tmp_path):
    path = str(tmp_path / "srv.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        s.listen()
        assert "has socket" in hc.healthcheck_socket(ME, path)
        with pytest.raises(hc.Unhealthy):
            hc.healthcheck_socket(ME, str(tmp_path / "other.sock"))
    with pytest.raises(hc.Unhealthy):
        hc.healthcheck_socket(ME, path)


def test_socket_client_side_in_another_process(tmp_path):
    """A process that only connected (never bound) is found via sock_diag."""
    path = str(tmp_path / "srv.sock")
    name = "hc-client-test"
    exe = tmp_path / name
    exe.symlink_to(sys.executable)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    code = ("import socket,sys,time; c=socket.socket(socket.AF_UNIX); c.connect(%r); "
            "print('ok', flush=True); time.sleep(30)" % path)
    p = subprocess.Popen([str(exe), "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ok"
        conn, _ = srv.accept()
        assert hc.find_pids(name) == [p.pid]
        assert "has socket" in hc.healthcheck_socket(name, path)
        with pytest.raises(hc.Unhealthy):
            hc.healthcheck_socket(name, path + ".other")
        conn.close()
    finally:
        p.kill()
        p.wait()
        srv.close()


def test_process_name_rules(tmp_path):
    long_name = f"sy{os.getpid()}-openvswitch-agent"  # comm keeps 15 characters; unique per run
    script = tmp_path / long_name
    script.write_text("#!%s\nimport time\nprint('up', flush=True)\ntime.sleep(30)\n" % sys.executable)
    script.chmod(0o755)
    p = subprocess.Popen([str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        names = hc.process_names(p.pid)
        assert long_name[:15] in names      # comm
        assert long_name in names           # argv[1] of an interpreter
        assert hc.find_pids(long_name) == [p.pid]
        assert not hc.name_matches("neutron", names)
    finally:
        p.kill()
        p.wait()
    # a process title like "nova-conductor: master process"
    p = subprocess.Popen(["bash", "-c", 'exec -a "nova-conductor: master process" sleep 30'])
    try:
        for _ in range(50):
            if "nova-conductor" in hc.process_names(p.pid):
                break
            time.sleep(0.05)
        assert p.pid in hc.find_pids("nova-conductor")  # a running cloud on this machine adds its own
    finally:
        p.kill()
        p.wait()


# ---------------------------------------------------------------------------
# healthcheck_curl

class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/nowhere")
            self.end_headers()
            return
        code = int(self.path.strip("/") or 200) if self.path.strip("/").isdigit() else 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_url():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path,healthy", [
    ("/", True), ("/204", True), ("/redirect", True), ("/401", True), ("/404", True),
    ("/500", False), ("/503", False)])
def test_curl_status_rule(http_url, path, healthy):
    if healthy:
        assert hc.healthcheck_curl(http_url + path).split()[0] in ("200", "204", "302", "401", "404")
    else:
        with pytest.raises(hc.Unhealthy, match="HTTP 50"):
            hc.healthcheck_curl(http_url + path)


def test_curl_connection_refused_and_timeout(http_url):
    with pytest.raises(hc.Unhealthy):
        hc.healthcheck_curl("http://127.0.0.1:%d/" % _free_port())
    started = time.monotonic()
    with pytest.raises(hc.Unhealthy):
        hc.healthcheck_curl(http_url + "/slow", timeout=0.5)
    assert time.monotonic() - started < 1.8


def test_curl_cli(http_url, tmp_path):
    link = tmp_path / "healthcheck_curl"
    link.symlink_to(SCRIPT)
    ok = subprocess.run([sys.executable, str(link), http_url + "/"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("healthy: 200")
    bad = subprocess.run([sys.executable, str(link), "--insecure", "--timeout", "3", http_url + "/500"],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1 and "HTTP 500" in bad.stderr


# ---------------------------------------------------------------------------
# command line dispatch

def test_dispatch_by_name_and_by_argument():
    assert hc.kind_from_argv(["/usr/local/bin/healthcheck_listen", "p", "1"]) == ("listen", ["p", "1"])
    assert hc.kind_from_argv(["healthcheck.py", "socket", "p", "/s"]) == ("socket", ["p", "/s"])


def test_cli_listen_via_symlink(listener, tmp_path):
    port = str(listener.getsockname()[1])
    link = tmp_path / "healthcheck_listen"
    link.symlink_to(SCRIPT)
    # the child is "python"; look for this test process by its name
    ok = subprocess.run([sys.executable, str(link), ME, port], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([sys.executable, str(SCRIPT), "listen", NO_SUCH, port],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "no process named" in bad.stderr
    usage = subprocess.run([sys.executable, str(SCRIPT), "bogus"], capture_output=True, text=True)
    assert usage.returncode == 1 and "unknown healthcheck" in usage.stderr


def test_run_never_raises():
    assert hc.run("port", ["x"], {})[0] == 1
    assert hc.run("port", ["x", "notaport"], {})[0] == 1
    assert hc.run("curl", [], {})[0] == 1
