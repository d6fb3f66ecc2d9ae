"""Shared harness of the tlsgate integration tests.

Every test drives the real binary ($TLSGATE_BIN) on loopback ports with real
clients: a raw SMTP client over a socket (SMTPClient), Python smtplib,
`openssl s_client -starttls smtp` and swaks.  A Gateway owns one temporary
directory (configuration, certificate store, mail log, state, Maildir) and one
`tlsgate run` process; GatewayTestCase starts one per test (or one per class
when share_gateway is set) and, when it is stopped, asserts a clean exit:
status 0 after SIGTERM and no sanitizer report on standard error.

Only the standard library and the Debian system Python are used.  Every
socket and every subprocess has a timeout, so nothing can hang a test past
ctest's limit.
"""

import atexit
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import warnings

SOURCE = os.environ.get("TLSGATE_SOURCE") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("TLSGATE_BIN") or os.path.join(SOURCE, "build", "tlsgate")
TESTCA = os.path.join(SOURCE, "tests", "tools", "testca")

HOSTNAME = "mx.example.test"       # the default listener hostname
GW_HOSTNAME = "gw.example.test"    # [gateway] hostname
CLIENT_NAME = "client.example.test"
TIMEOUT = 10                       # default for sockets and replies, seconds
LOG_TIMEOUT = 5                    # waiting for a mail-log line, seconds
# ctest kills a module after 600 s and its output is lost with it; past this
# budget every further test fails at once, so that the report gets written.
MODULE_BUDGET = float(os.environ.get("TLSGATE_TEST_BUDGET", "480"))
_STARTED = time.monotonic()

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")

LOG_RE = re.compile(r"^([A-Z][a-z]{2} [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}) "
                    r"(Info|Warning|Debug): (.*)$")

# ---------------------------------------------------------------------------
# Test certificates: made once per test module (one process under ctest).

_certs_dir = None


def test_certs():
    """The testca output directory (made on first use, removed at exit)."""
    global _certs_dir
    if _certs_dir is None:
        d = tempfile.mkdtemp(prefix="tlsgate-ca-")
        atexit.register(shutil.rmtree, d, True)
        r = subprocess.run([TESTCA, d], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("testca failed: %s%s" % (r.stdout, r.stderr))
        _certs_dir = d
    return _certs_dir


def ca_file():
    return os.path.join(test_certs(), "ca.pem")


def client_context(verify=True, minimum=None, maximum=None, ciphers=None, cert=None):
    """An ssl.SSLContext for a test client.  VERIFY: trust the test CA and
    check the name; MINIMUM/MAXIMUM: ssl.TLSVersion (below TLS 1.2 the
    security level is lowered so that old protocols can be offered at all);
    CIPHERS: a TLS 1.2 cipher string; CERT: a store name whose certificate
    the client presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca_file())
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None or (maximum is not None and maximum < ssl.TLSVersion.TLSv1_2):
        ctx.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = minimum or ssl.TLSVersion.TLSv1
    elif ciphers:
        ctx.set_ciphers(ciphers)
    if maximum is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = maximum
    if cert:
        d = os.path.join(test_certs(), cert)
        ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    return ctx


# ---------------------------------------------------------------------------
# Small helpers.

def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago on HOST."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_loopback():
    """True if [::1] can be bound."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _listening(port, v6):
    """True/False from /proc/net/tcp{,6} (a port in LISTEN state), None when
    the table cannot be read."""
    path = "/proc/net/tcp6" if v6 else "/proc/net/tcp"
    try:
        with open(path) as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    want = ":%04X" % port
    for row in rows:
        cols = row.split()
        if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":
            return True
    return False


def expected_rdns(ip):
    """(name, verified) as a forward-confirmed reverse lookup should give
    them with this machine's resolver: ("unknown", "no") without a PTR."""
    try:
        name = socket.gethostbyaddr(ip)[0]
    except OSError:
        return "unknown", "no"
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None)}
    except OSError:
        addrs = set()
    return name, ("yes" if ip in addrs else "no")


def read_maildir_new(new):
    """The contents of the files in a Maildir's new/ folder NEW, oldest
    first ([] if it does not exist)."""
    if not os.path.isdir(new):
        return []
    files = sorted((os.stat(os.path.join(new, n)).st_mtime_ns, n) for n in os.listdir(new))
    out = []
    for _, n in files:
        with open(os.path.join(new, n), "rb") as f:
            out.append(f.read())
    return out


def crlf_to_lf(data):
    return data.replace(b"\r\n", b"\n")


def unfold_header(block, name):
    """The unfolded value of the first header NAME in the header text BLOCK."""
    lines = block.split("\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(name.lower() + ":"):
            value = line[len(name) + 1:]
            for cont in lines[i + 1:]:
                if cont[:1] in (" ", "\t"):
                    value += " " + cont.strip()
                else:
                    break
            return " ".join(value.split())
    return None


def split_received(msg):
    """(received header text with its continuation lines, rest) of a Maildir
    file's bytes, or (None, msg) if it does not start with Received:."""
    if not msg.startswith(b"Received:"):
        return None, msg
    lines = msg.split(b"\n")
    n = 1
    while n < len(lines) and lines[n][:1] in (b" ", b"\t"):
        n += 1
    return b"\n".join(lines[:n]), b"\n".join(lines[n:])


# ---------------------------------------------------------------------------
# The raw SMTP client.

class ConnectionClosed(Exception):
    pass


class Reply:
    """One SMTP reply: CODE (int) and LINES (each full line without CRLF)."""

    def __init__(self, lines):
        self.lines = lines
        self.code = int(lines[-1][:3])

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def last(self):
        return self.lines[-1]

    def __repr__(self):
        return "Reply(%r)" % self.lines

    def __str__(self):
        return self.text


class SMTPClient:
    """A plain socket speaking SMTP: send() raw bytes, reply() one complete
    (possibly multi-line) reply, cmd() both.  Every read has a deadline."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=TIMEOUT,
                 implicit_tls=False, context=None, server_hostname=HOSTNAME,
                 greeting=True, gateway=None):
        self.timeout = timeout
        self.host = host
        self.buf = b""
        self.tls = False
        self.gateway = gateway
        self.log_mark = gateway.log_count() if gateway else 0
        self._icid = None
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=src)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local_ip = self.sock.getsockname()[0]
        if gateway:
            gateway.clients.append(self)
        if implicit_tls:
            self._handshake(context or client_context(), server_hostname)
        self.greeting = self.reply() if greeting else None

    # --- bytes -----------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no reply within the deadline; got %r" % self.buf)
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ssl.SSLZeroReturnError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            raise ConnectionClosed("connection closed; unread %r" % self.buf)
        self.buf += data

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return Reply(lines)

    def cmd(self, line, timeout=None):
        self.send(line.encode("utf-8") + b"\r\n")
        return self.reply(timeout)

    def pending(self, wait=0.3):
        """Whatever arrives within WAIT seconds (added to the buffer and
        returned without consuming it); b"" if nothing."""
        deadline = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                self._fill(deadline)
        except (socket.timeout, ConnectionClosed, OSError):
            pass
        return self.buf

    def wait_closed(self, timeout=None):
        """Reads until the peer closes; returns (closed, bytes read)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                self._fill(deadline)
        except ConnectionClosed:
            return True, self.buf
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True, self.buf
        except socket.timeout:
            return False, self.buf

    # --- SMTP conveniences -----------------------------------------------
    def ehlo(self, name=CLIENT_NAME):
        return self.cmd("EHLO " + name)

    def starttls(self, context=None, server_hostname=HOSTNAME):
        """STARTTLS; on 220 checks that nothing else is buffered and does
        the handshake.  Returns the reply."""
        r = self.cmd("STARTTLS")
        if r.code == 220:
            if self.buf:
                raise AssertionError("bytes after the 220 to STARTTLS: %r" % self.buf)
            self._handshake(context or client_context(), server_hostname)
        return r

    def _handshake(self, context, server_hostname):
        self.sock.settimeout(self.timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.tls = True

    def mail_transaction(self, sender, rcpts, data, ehlo=False):
        """MAIL, RCPT..., DATA, the message (bytes, sent as is: it must end
        with CRLF.CRLF) and returns the list of replies."""
        replies = []
        if ehlo:
            replies.append(self.ehlo())
        replies.append(self.cmd("MAIL FROM:<%s>" % sender))
        for r in rcpts:
            replies.append(self.cmd("RCPT TO:<%s>" % r))
        replies.append(self.cmd("DATA"))
        if replies[-1].code != 354:
            return replies
        self.send(data)
        replies.append(self.reply())
        return replies

    @property
    def icid(self):
        """The ICID of this session, from the first unclaimed "New SMTP ICID"
        line for our address written after we connected."""
        if self._icid is None:
            self._icid = self.gateway.claim_icid(self.local_ip, self.log_mark)
        return self._icid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# The gateway under test.

LISTENER_DEFAULTS = {
    "address": "127.0.0.1:{port}",
    "interface": "Data 1",
    "hostname": HOSTNAME,
    "certificate": "good",
    "tls": "preferred",
    "route": "local",
    "accept_domains": "example.test, .example.test",
}


def ini_section(name, keys):
    out = ["[%s]" % name]
    for k, v in keys.items():
        if v is not None:
            out.append("%s = %s" % (k, v))
    return "\n".join(out) + "\n"


class Gateway:
    """One tlsgate process and its temporary directory.

    GATEWAY: extra [gateway] keys; LISTENERS: {name: keys} merged over
    LISTENER_DEFAULTS ("{port}" in address is replaced by a free port);
    SENDERGROUPS: [(name, keys)]; EXTRA: raw INI appended."""

    def __init__(self, gateway=None, listeners=None, sendergroups=None, extra="", tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="tlsgate-test-")
        self.own_tmp = tmp is None
        self.proc = None
        self.clients = []
        self.claimed = set()
        self.stdout_path = os.path.join(self.tmp, "stdout")
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.config_path = os.path.join(self.tmp, "tlsgate.ini")
        self.maillog = os.path.join(self.tmp, "mail.log")
        self.state_dir = os.path.join(self.tmp, "state")
        self.certs_dir = os.path.join(self.tmp, "certs")
        self.maildir = os.path.join(self.tmp, "mail")
        if not os.path.isdir(self.certs_dir):
            self._copy_certs()
        self.gateway_keys = dict(gateway or {})
        self.listeners = {}
        self.ports = {}
        for name, keys in (listeners if listeners is not None else {"in": {}}).items():
            merged = dict(LISTENER_DEFAULTS)
            merged.update(keys)
            addr = merged["address"]
            if "{port}" in addr:
                host = addr.rsplit(":", 1)[0].strip("[]")
                self.ports[name] = free_port(host)
                merged["address"] = addr.replace("{port}", str(self.ports[name]))
            else:
                self.ports[name] = int(addr.rsplit(":", 1)[1])
            self.listeners[name] = merged
        self.sendergroups = list(sendergroups or [])
        self.extra = extra
        self.write_config()

    def _copy_certs(self):
        src = test_certs()
        os.makedirs(self.certs_dir)
        for name in os.listdir(src):
            p = os.path.join(src, name)
            if os.path.isdir(p):
                shutil.copytree(p, os.path.join(self.certs_dir, name))

    # --- configuration ---------------------------------------------------
    @property
    def port(self):
        return next(iter(self.ports.values()))

    def listener_host(self, name=None):
        addr = self.listeners[name or next(iter(self.listeners))]["address"]
        return addr.rsplit(":", 1)[0].strip("[]")

    def config_text(self):
        g = {
            "hostname": GW_HOSTNAME,
            "maillog": self.maillog,
            "state_dir": self.state_dir,
            "certs_dir": self.certs_dir,
            "workers": "1",
        }
        g.update(self.gateway_keys)
        parts = [ini_section("gateway", g)]
        for name, keys in self.listeners.items():
            parts.append(ini_section("listener:" + name, keys))
        for name, keys in self.sendergroups:
            parts.append(ini_section("sendergroup:" + name, keys))
        parts.append(ini_section("route:local", {"maildir": self.maildir}))
        if self.extra:
            parts.append(self.extra)
        return "\n".join(parts)

    def write_config(self, text=None):
        """Writes TEXT (default: the configuration from the attributes)
        atomically to the config path."""
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text if text is not None else self.config_text())
        os.rename(tmp, self.config_path)

    # --- process ---------------------------------------------------------
    def start(self, wait=True, timeout=TIMEOUT):
        if not os.access(BIN, os.X_OK):
            raise AssertionError("no tlsgate binary at %s (set TLSGATE_BIN)" % BIN)
        self.out = open(self.stdout_path, "ab")
        self.err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([BIN, "run", "-c", self.config_path], cwd=self.tmp,
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=self.err)
        if wait:
            self.wait_listening(timeout)
        return self

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_listening(self, timeout=TIMEOUT):
        """Until every listener port is in LISTEN state (from /proc/net/tcp;
        where that cannot be read, until it accepts a TCP connection)."""
        deadline = time.monotonic() + timeout
        pending = dict(self.ports)
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError("tlsgate exited with %s before listening; stderr:\n%s"
                                     % (self.proc.returncode, self.stderr_text()))
            for name, port in list(pending.items()):
                host = self.listener_host(name)
                state = _listening(port, ":" in host)
                if state is None:
                    try:
                        socket.create_connection((host, port), timeout=1).close()
                        state = True
                    except OSError:
                        state = False
                if state:
                    del pending[name]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError("tlsgate not listening on %s after %ss; stderr:\n%s"
                                     % (pending, timeout, self.stderr_text()))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        """Sends SIG and waits; returns the exit status.  A process that does
        not exit within TIMEOUT is killed and AssertionError raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self._close_files()
                raise AssertionError("tlsgate did not exit within %ss of %s; stderr:\n%s"
                                     % (timeout, signal.Signals(sig).name, self.stderr_text()))
        self._close_files()
        return self.proc.returncode

    def wait_exit(self, timeout=TIMEOUT):
        """Waits (without signalling) for the process to exit; returns the
        status.  Killed and AssertionError raised after TIMEOUT."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            self._close_files()
            raise AssertionError("tlsgate did not exit within %ss; stderr:\n%s"
                                 % (timeout, self.stderr_text()))
        self._close_files()
        return self.proc.returncode

    def _close_files(self):
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f:
                f.close()

    def assert_clean_stderr(self):
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("sanitizer report on stderr:\n" + text)

    def finish(self, keep=False):
        """Closes our clients, stops the process with SIGTERM, asserts exit
        status 0 and a clean stderr, removes the directory."""
        for c in self.clients:
            c.close()
        self.clients = []
        try:
            if self.proc is not None:
                rc = self.stop()
                self.assert_clean_stderr()
                if rc != 0:
                    raise AssertionError("tlsgate exited with status %s; stderr:\n%s"
                                         % (rc, self.stderr_text()))
        finally:
            if self.own_tmp and not keep and not os.environ.get("TLSGATE_KEEP"):
                shutil.rmtree(self.tmp, ignore_errors=True)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_files()

    def run_cli(self, *args, timeout=30):
        """Runs `tlsgate ARGS...` to completion; the CompletedProcess."""
        return subprocess.run([BIN] + list(args), cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    # --- clients ---------------------------------------------------------
    def connect(self, listener=None, **kw):
        name = listener or next(iter(self.listeners))
        kw.setdefault("host", self.listener_host(name))
        if self.listeners[name].get("implicit_tls") == "yes":
            kw.setdefault("implicit_tls", True)
        return SMTPClient(self.ports[name], gateway=self, **kw)

    def smtplib(self, listener=None, ssl_context=None, **kw):
        """An smtplib.SMTP (or SMTP_SSL for an implicit-TLS listener)
        connected to the listener; closed when the gateway is finished."""
        name = listener or next(iter(self.listeners))
        host = self.listener_host(name)
        if self.listeners[name].get("implicit_tls") == "yes":
            s = smtplib.SMTP_SSL(host, self.ports[name], local_hostname=CLIENT_NAME,
                                 timeout=TIMEOUT, context=ssl_context or client_context(), **kw)
        else:
            s = smtplib.SMTP(host, self.ports[name], local_hostname=CLIENT_NAME,
                             timeout=TIMEOUT, **kw)
        # smtplib has no server_hostname knob: it uses the host it connected
        # to (an IP literal), which the "good" certificate covers.
        self.clients.append(_SmtplibCloser(s))
        return s

    def s_client(self, listener=None, input_text="", args=(), timeout=30, starttls=True,
                 quiet=True):
        """`openssl s_client` against the listener (STARTTLS unless the
        listener is implicit TLS), trusting the test CA and failing on a
        verification error; INPUT_TEXT is sent after the handshake (LF
        becomes CRLF) and s_client waits for the server to close.  With
        QUIET stdout holds only the server's replies, else the full session
        report too.  CompletedProcess."""
        name = listener or next(iter(self.listeners))
        host = self.listener_host(name)
        target = "[%s]:%d" % (host, self.ports[name]) if ":" in host else "%s:%d" % (
            host, self.ports[name])
        cmd = ["openssl", "s_client", "-connect", target, "-CAfile", ca_file(),
               "-servername", HOSTNAME, "-verify_hostname", HOSTNAME,
               "-verify_return_error", "-crlf", "-quiet" if quiet else "-ign_eof"]
        if starttls and self.listeners[name].get("implicit_tls") != "yes":
            cmd += ["-starttls", "smtp", "-name", CLIENT_NAME]
        cmd += list(args)
        return subprocess.run(cmd, input=input_text, capture_output=True, text=True,
                              timeout=timeout)

    def swaks(self, listener=None, args=(), timeout=30, tls="starttls", to="user@example.test",
              sender="sender@example.org"):
        """swaks against the listener.  TLS: "starttls", "smtps" or None.
        CompletedProcess (stdout holds the transcript)."""
        name = listener or next(iter(self.listeners))
        host = self.listener_host(name)
        cmd = ["swaks", "--server", host, "--port", str(self.ports[name]),
               "--helo", CLIENT_NAME, "--to", to, "--from", sender,
               "--timeout", "20", "--tls-ca-path", ca_file()]
        if ":" in host:
            cmd += ["-6"]
        if tls == "starttls":
            cmd += ["--tls"]
        elif tls == "smtps":
            cmd += ["--tls-on-connect"]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    # --- mail log ----------------------------------------------------------
    def raw_log(self, path=None):
        try:
            with open(path or self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, path=None, strict=True):
        """[(level, text)] of the mail log, timestamp stripped.  With STRICT
        a line that is not in the ESA format fails the test."""
        out = []
        for line in self.raw_log(path).splitlines():
            m = LOG_RE.match(line)
            if not m:
                if strict:
                    raise AssertionError("mail log line not in the ESA format: %r" % line)
                continue
            out.append((m.group(2), m.group(3)))
        return out

    def log_count(self):
        return len(self.log_lines(strict=False))

    def log_texts(self, since=0):
        return [t for _, t in self.log_lines()[since:]]

    def wait_for_log(self, regex, timeout=LOG_TIMEOUT, since=0, level=None):
        """The first match (re.Match) of REGEX against a log line text after
        line SINCE; fails after TIMEOUT."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            for lv, text in self.log_lines()[since:]:
                m = pat.search(text)
                if m and (level is None or lv == level):
                    return m
            if time.monotonic() > deadline:
                raise AssertionError("no mail log line matching %r within %ss; log:\n%s"
                                     % (regex, timeout, self.raw_log()))
            time.sleep(0.05)

    def claim_icid(self, ip, since=0, timeout=LOG_TIMEOUT):
        deadline = time.monotonic() + timeout
        pat = re.compile(r"^New SMTP ICID (\d+) interface .* address (\S+) reverse dns host ")
        while True:
            for _, text in self.log_lines()[since:]:
                m = pat.match(text)
                if m and m.group(2) == ip and int(m.group(1)) not in self.claimed:
                    icid = int(m.group(1))
                    self.claimed.add(icid)
                    return icid
            if time.monotonic() > deadline:
                raise AssertionError("no New SMTP ICID line for %s; log:\n%s"
                                     % (ip, self.raw_log()))
            time.sleep(0.05)

    def session_log(self, icid, wait_end=True, timeout=LOG_TIMEOUT):
        """The log texts of session ICID, in order: its ICID lines, the
        lines of the MIDs started in it.  With WAIT_END, waits for its
        "ICID n close|lost" line first."""
        if wait_end:
            self.wait_for_log(r"^ICID %d (close|lost)$" % icid, timeout)
        mids = set()
        out = []
        icid_re = re.compile(r"\bICID %d\b" % icid)
        for _, text in self.log_lines():
            m = re.match(r"^Start MID (\d+) ICID (\d+)$", text)
            if m and int(m.group(2)) == icid:
                mids.add(int(m.group(1)))
            m = re.match(r"^MID (\d+) ", text)
            if icid_re.search(text) or (m and int(m.group(1)) in mids):
                out.append(text)
        return out

    # --- Maildir -----------------------------------------------------------
    def maildir_messages(self, check_tmp=True):
        """Contents (bytes) of the files in Maildir new/, oldest first.
        With CHECK_TMP, asserts that tmp/ holds nothing."""
        new = os.path.join(self.maildir, "new")
        if check_tmp:
            tmpd = os.path.join(self.maildir, "tmp")
            left = os.listdir(tmpd) if os.path.isdir(tmpd) else []
            if left:
                raise AssertionError("files left in Maildir tmp/: %r" % left)
        return read_maildir_new(new)

    def wait_messages(self, count, timeout=LOG_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.maildir_messages(check_tmp=False)
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)


class _SmtplibCloser:
    def __init__(self, s):
        self.s = s

    def close(self):
        try:
            self.s.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# The TestCase base.

class GatewayTestCase(unittest.TestCase):
    """Starts a gateway per test (self.gw), or one per class when
    share_gateway is True, from the class attributes below; stops it at the
    end and asserts exit status 0 and no sanitizer report."""

    share_gateway = False
    gateway_config = {}
    listener_config = None          # None: {"in": {}}
    sendergroups = []
    extra_config = ""
    maxDiff = None

    @classmethod
    def make_gateway(cls, **over):
        kw = dict(gateway=cls.gateway_config,
                  listeners=cls.listener_config if cls.listener_config is not None
                  else {"in": {}},
                  sendergroups=cls.sendergroups, extra=cls.extra_config)
        kw.update(over)
        return Gateway(**kw)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shared_gw = None
        if cls.share_gateway:
            gw = cls.make_gateway()
            try:
                gw.start()
            except BaseException:
                gw.kill()
                shutil.rmtree(gw.tmp, ignore_errors=True)
                raise
            cls.shared_gw = gw

    @classmethod
    def tearDownClass(cls):
        gw, cls.shared_gw = cls.shared_gw, None
        if gw is not None:
            gw.finish()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        if time.monotonic() - _STARTED > MODULE_BUDGET:
            self.fail("the time budget of this test module (%ss) is spent" % MODULE_BUDGET)
        if self.share_gateway:
            self.gw = self.shared_gw
            if not self.gw.alive():
                self.fail("the shared gateway is not running; stderr:\n" + self.gw.stderr_text())
        else:
            self.gw = self.make_gateway()
            self.addCleanup(self._finish_own)
            try:
                self.gw.start()
            except BaseException:
                self.gw.kill()
                raise

    def _finish_own(self):
        self.gw.finish()

    def tearDown(self):
        if self.share_gateway:
            for c in self.gw.clients:
                c.close()
            self.gw.clients = []
            if not self.gw.alive():
                self.fail("tlsgate died during the test; status %s, stderr:\n%s"
                          % (self.gw.proc.returncode, self.gw.stderr_text()))
        super().tearDown()

    # --- assertions ------------------------------------------------------
    def connect(self, **kw):
        return self.gw.connect(**kw)

    def assertReply(self, reply, code, text=None, msg=None):
        """REPLY has CODE and, when TEXT is given, its last line is exactly
        "CODE TEXT" (TEXT a str) or matches TEXT (a compiled regex)."""
        self.assertIsInstance(reply, Reply, msg)
        self.assertEqual(reply.code, code, msg or reply.text)
        if text is not None:
            if isinstance(text, str):
                self.assertEqual(reply.last, "%d %s" % (code, text), msg)
            else:
                self.assertRegex(reply.last, text, msg)

    def assertClosed(self, client, timeout=5):
        closed, data = client.wait_closed(timeout)
        self.assertTrue(closed, "connection still open after %ss; got %r" % (timeout, data))
        return data

    def ehlo_ok(self, client, hostname=HOSTNAME):
        r = client.ehlo()
        self.assertReply(r, 250)
        self.assertEqual(r.lines[0], "250-" + hostname)
        return r

    def assertInLog(self, text, since=0, level="Info"):
        lines = self.gw.log_lines()[since:]
        self.assertIn((level, text), lines, "\n".join("%s: %s" % l for l in lines))


def simple_message(subject="test", body="Hello.\r\n"):
    return ("From: <sender@example.org>\r\nTo: <user@example.test>\r\nSubject: %s\r\n\r\n%s"
            % (subject, body)).encode("utf-8")
