"""nginx in front of a test's pullthrough, run with the site users deploy (deploy/nginx.conf).

    nginx = ensure_nginx()  # the Debian package's binary; apt-get installs it (as root) if missing
    with NginxFront(nginx, tmp_path / "nginx", upstream_port=gunicorn_port) as front:
        requests.get(front.url + "/pypi/main/simple/", timeout=5)

The deploy file is a site for Debian's /etc/nginx/nginx.conf (its `http` context includes
sites-enabled/*). The front wraps it in the same frame (worker_connections 768, sendfile,
tcp_nopush) with this test's pid, log and temp paths under `prefix`, and renders it with
:func:`render_site`: every directive as written except the listening address (127.0.0.1 and a
free port, plain HTTP: the `ssl*` directives go), the upstream address (the test's gunicorn),
the log and page cache paths (under `prefix`), the stored files' folder (the test server's,
when given), and the server blocks that proxy nothing (the port-80 redirect).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from support.debian import ensure
from support.servers import free_port, wait_ready

__all__ = [
    "DEPLOY_SITE",
    "Directive",
    "NginxFront",
    "dump",
    "ensure_nginx",
    "find",
    "find_nginx",
    "parse",
    "render_site",
]

DEPLOY_SITE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
HOST = "127.0.0.1"
STOP_TIMEOUT = 10


# ------------------------------------------------------------------------------ the program


def find_nginx() -> str | None:
    """The nginx binary: Debian's /usr/sbin/nginx, or nginx on PATH."""
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx"), "/usr/local/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_nginx() -> str:
    """The nginx binary; the Debian package is installed when missing (support.debian).
    Raises support.debian.Unavailable with the reason otherwise."""
    return ensure("nginx", find_nginx)


# ------------------------------------------------------------------------------ the config


@dataclass
class Directive:
    """One nginx directive: `name args;`, or `name args { block }`."""

    name: str
    args: list[str]
    block: list[Directive] | None = None


_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>\#[^\n]*)|(?P<word>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'"""
    r"""|[^\s{};"'\#]+)|(?P<punct>[{};])|(?P<bad>.)""",
    re.DOTALL,
)


def parse(text: str) -> list[Directive]:
    """nginx configuration text as directives (comments dropped, quoted words kept quoted)."""
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for match in _TOKEN.finditer(text):
        kind, token = match.lastgroup, match.group()
        if kind in ("space", "comment"):
            continue
        if kind == "bad":
            raise ValueError(f"unexpected {token!r} at offset {match.start()}")
        if kind == "word":
            words.append(token)
        elif token == ";" and words:
            stack[-1].append(Directive(words[0], words[1:]))
            words = []
        elif token == "{" and words:
            directive = Directive(words[0], words[1:], [])
            stack[-1].append(directive)
            assert directive.block is not None
            stack.append(directive.block)
            words = []
        elif token == "}" and not words and len(stack) > 1:
            stack.pop()
        else:
            raise ValueError(f"unexpected {token!r} at offset {match.start()}")
    if words or len(stack) != 1:
        raise ValueError("unterminated directive or block at the end")
    return stack[0]


def dump(directives: list[Directive], depth: int = 0) -> str:
    pad = "    " * depth
    out = []
    for d in directives:
        head = " ".join([d.name, *d.args])
        if d.block is None:
            out.append(f"{pad}{head};\n")
        else:
            out.append(f"{pad}{head} {{\n{dump(d.block, depth + 1)}{pad}}}\n")
    return "".join(out)


def find(directives: list[Directive], name: str) -> list[Directive]:
    """Every directive called `name`, at any depth."""
    found = []
    for d in directives:
        if d.name == name:
            found.append(d)
        if d.block is not None:
            found.extend(find(d.block, name))
    return found


def render_site(
    text: str,
    *,
    port: int,
    upstream_port: int,
    logs: Path,
    cache: Path | None = None,
    artifacts: Path | None = None,
) -> str:
    """The deploy site for a test: listening on HOST:port (plain HTTP), proxying to
    HOST:upstream_port, logging under `logs`, its page cache in `cache` (default: `cache` next
    to `logs`), the files of X-Accel-Redirect from `artifacts` (the test server's
    data_dir/artifacts; None: unchanged); every other directive unchanged."""
    site = parse(text)
    for cache_path in find(site, "proxy_cache_path"):
        cache_path.args[0] = str(cache or logs.parent / "cache")
    if artifacts is not None:
        for alias in find(site, "alias"):
            alias.args[0] = f"{artifacts}/"
    upstreams = {d.args[0]: d for d in site if d.name == "upstream" and d.block is not None}
    fronts = [d for d in site if d.name == "server" and find(d.block or [], "proxy_pass")]
    if len(fronts) != 1:
        raise ValueError(f"expected one server block that proxies, found {len(fronts)}")
    front = fronts[0]
    assert front.block is not None
    for proxy_pass in find(front.block, "proxy_pass"):
        name = re.split(r"[/$]", proxy_pass.args[0].removeprefix("http://"))[0]
        if name not in upstreams:
            raise ValueError(f"proxy_pass {proxy_pass.args[0]} names no upstream block")
    for upstream in upstreams.values():
        servers = [d for d in upstream.block or [] if d.name == "server"]
        if len(servers) != 1:
            raise ValueError(f"upstream {upstream.args[0]}: expected one server line")
        servers[0].args[0] = f"{HOST}:{upstream_port}"
    for log in find(front.block, "access_log") + find(front.block, "error_log"):
        if log.args and log.args[0] != "off":
            log.args[0] = str(logs / Path(log.args[0]).name)
    front.block[:] = [Directive("listen", [f"{HOST}:{port}"])] + [
        d for d in front.block if d.name not in ("listen", "http2") and not d.name.startswith("ssl")
    ]
    # Server blocks that proxy nothing (the port-80 redirect to https) are left out.
    return dump([d for d in site if d.name != "server" or d is front])


# The frame of Debian's /etc/nginx/nginx.conf, with this front's paths (and `user root` when
# run as root: the workers write temp files under a 0700 test directory).
MAIN_CONF = """\
{user}worker_processes 2;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{
    worker_connections 768;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include {prefix}/pullthrough.conf;
}}
"""


class NginxFront:
    """nginx on HOST:<free port> running `site` (the deploy file) in front of
    HOST:upstream_port, in `prefix`; stopped (and waited for) on exit."""

    def __init__(
        self,
        nginx: str,
        prefix: Path,
        upstream_port: int,
        site: Path = DEPLOY_SITE,
        artifacts: Path | None = None,
    ) -> None:
        self.nginx = nginx
        self.prefix = prefix
        self.upstream_port = upstream_port
        self.site = site
        self.artifacts = artifacts  # the server's data_dir/artifacts, for X-Accel-Redirect
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def errors(self) -> str:
        """The end of nginx's error logs (the main one and the site's)."""
        logs = [self.error_log, *sorted(self.prefix.glob("logs/*error*"))]
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())

    def start(self) -> NginxFront:
        (self.prefix / "temp").mkdir(parents=True, exist_ok=True)
        (self.prefix / "logs").mkdir(exist_ok=True)
        self.port = free_port()
        (self.prefix / "pullthrough.conf").write_text(
            render_site(
                self.site.read_text(),
                port=self.port,
                upstream_port=self.upstream_port,
                logs=self.prefix / "logs",
                artifacts=self.artifacts,
            )
        )
        conf = self.prefix / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(MAIN_CONF.format(user=user, prefix=self.prefix))
        argv = [self.nginx, "-p", str(self.prefix), "-e", str(self.error_log), "-c", str(conf)]
        checked = subprocess.run(
            [*argv, "-t", "-q"], capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{checked.stderr}\n{self.errors()}")
        with open(self.prefix / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: the workers can be killed too
            )
        try:
            wait_ready(self.url + "/pulp/api/v3/status/", self.proc, timeout=15)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"nginx front did not start: {exc}\n{self.errors()}") from exc
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGTERM: open connections are closed, slow ones too)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the master and its workers
            proc.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> NginxFront:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
