"""Real next hops for the outbound tests, and the gateway set up as a relay.

Upstream servers, each on 127.0.0.1 with a port chosen by the kernel, each
recording every command it saw (with whether it came over TLS) and every
message it accepted (envelope and content), so that tests can assert what
reached the next hop, exactly once, and in which order:

  SMTPUpstream    aiosmtpd in a thread.  STARTTLS advertised or not, or
                  answered "454 4.7.0 TLS not available due to temporary
                  reason"; a TLS context that cannot complete a handshake;
                  only 1024-bit DHE (dh key too small); any test-CA
                  certificate; AUTH PLAIN/LOGIN required over TLS with a
                  known user; fixed replies to MAIL, RCPT or the end of
                  data (the Amazon SES replies are below).
  RawUpstream     a plain socket server, for what aiosmtpd cannot do: bytes
                  injected after "220 Ready to start TLS" (USENIX Security
                  2021, "Why TLS is better without STARTTLS"), a connection
                  dropped after N bytes of message text, and probes for a
                  client that sends before it was answered (pipelining
                  without PIPELINING, acting on an injected reply).
  PostfixUpstream a private Postfix instance (own config, queue and data
                  directories, started with "postfix -c DIR start") as a
                  receiving MTA with STARTTLS, delivering into a Maildir.

OutboundTestCase starts the upstreams of a class, then one gateway whose
relay listener (RELAYLIST 127.0.0.0/8, no listener route) routes by domain:
[route:*] sections, MX delivery through the TLSGATE_HOSTS_MX test hook and
[gateway] mx_port, [destination:*] levels, trust anchors from the test CA
only (system_trust = no).

Only the standard library and Debian's python3-aiosmtpd.  Every socket and
subprocess has a timeout; every server is stopped and every file removed.
"""

import atexit
import base64
import collections
import logging
import os
import pwd
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

import tlsgate_test as tt

LOOPBACK = "127.0.0.1"
TIMEOUT = tt.TIMEOUT

# The replies Amazon SES documents (SES developer guide, "SMTP response
# codes" and "Amazon SES SMTP issues"); they must reach the client as is.
SES_NOT_VERIFIED = ("554 Message rejected: Email address is not verified. The following "
                    "identities failed the check in region US-EAST-1: sender@example.org")
SES_ACCESS_DENIED = ("554 Access denied: User `arn:aws:iam::123456789012:user/ses-smtp-user' "
                     "is not authorized to perform `ses:SendRawEmail' on resource "
                     "`arn:aws:ses:us-east-1:123456789012:identity/example.org'")
SES_AUTH_INVALID = "535 Authentication Credentials Invalid"
STARTTLS_TEMPFAIL = "454 4.7.0 TLS not available due to temporary reason"

AUTH_USER = "AKIAIOSFODNN7EXAMPLE"
AUTH_PASSWORD = "BDs3cr3t+SES/smtp=Passw0rd-7f3a9c"  # must never show in a log

# aiosmtpd and asyncio report every failed handshake and dropped
# connection; the tests provoke those on purpose.  AUTH without STARTTLS is
# what an implicit-TLS upstream needs (aiosmtpd cannot tell).
for _name in ("mail.log", "asyncio"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)


def cert_paths(name):
    """(cert.pem, key.pem) of a test-CA store entry."""
    d = os.path.join(tt.test_certs(), name)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


_dh1024 = None


def dh1024_params():
    """A 1024-bit DH group (PEM file), made once per process with openssl."""
    global _dh1024
    if _dh1024 is None:
        d = tempfile.mkdtemp(prefix="tlsgate-dh-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "dh1024.pem")
        subprocess.run(["openssl", "dhparam", "-out", path, "1024"], check=True,
                       capture_output=True, timeout=120)
        _dh1024 = path
    return _dh1024


def server_context(cert="good", mode="ok"):
    """A server SSLContext presenting test-CA certificate CERT.  MODE:
    "ok"; "fail": only TLS 1.0/1.1, so a client with a TLS 1.2 floor can
    never complete the handshake; "tls12": TLS 1.2 at most; "dhe1024":
    TLS 1.2 with DHE-RSA-AES128-GCM-SHA256 only, over a 1024-bit group
    (with the RSA certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if mode == "dhe1024":
        cert = "good-rsa"
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0")
        ctx.load_dh_params(dh1024_params())
    elif mode == "tls12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif mode == "fail":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.load_cert_chain(*cert_paths(cert))
    return ctx


# ---------------------------------------------------------------------------
# What an upstream saw.

Command = collections.namedtuple("Command", "conn verb arg tls")
Message = collections.namedtuple("Message",
                                 "conn mail_from mail_options rcpt_tos content tls auth_user")


class Recorder:
    """The record of one upstream: connections, commands, messages and
    free-form events, safe to read from the test thread.  Connections are
    numbered from 1 after each reset(); what a connection from before the
    reset still does is not recorded."""

    def __init__(self):
        self._lock = threading.Lock()
        self._conn_total = 0
        self.reset()

    def reset(self):
        with self._lock:
            self._conn_base = self._conn_total
            self.commands = []
            self.messages = []
            self.events = []
            self.auth_attempts = []  # (mechanism, login, password ok)
            self._queued = 0

    @property
    def connections(self):
        with self._lock:
            return self._conn_total - self._conn_base

    def _queue_id(self):
        with self._lock:
            self._queued += 1
            return self._queued

    def _new_conn(self):
        """A connection's number, absolute (see _rel)."""
        with self._lock:
            self._conn_total += 1
            return self._conn_total

    def _rel(self, conn):
        """CONN as numbered since the last reset; None if from before it.
        Call with the lock held."""
        return conn - self._conn_base if conn > self._conn_base else None

    def _command(self, conn, verb, arg, tls):
        with self._lock:
            if self._rel(conn):
                self.commands.append(Command(self._rel(conn), verb.upper(), arg, tls))

    def _message(self, msg):
        with self._lock:
            if self._rel(msg.conn):
                self.messages.append(msg._replace(conn=self._rel(msg.conn)))

    def _event(self, conn, what):
        with self._lock:
            if self._rel(conn):
                self.events.append((self._rel(conn), what))

    def _auth(self, conn, mechanism, login, ok):
        with self._lock:
            if self._rel(conn):
                self.auth_attempts.append((mechanism, login, ok))

    def verbs(self, conn=None):
        """[(VERB, tls)] in order, of connection CONN or of all."""
        with self._lock:
            return [(c.verb, c.tls) for c in self.commands if conn is None or c.conn == conn]

    def wait_messages(self, count, timeout=TIMEOUT):
        """The messages once there are COUNT (or whatever there is after
        TIMEOUT)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= count or time.monotonic() > deadline:
                    return list(self.messages)
            time.sleep(0.02)


# ---------------------------------------------------------------------------
# aiosmtpd upstream.

class _Methods(dict):
    """SMTP._smtp_methods that records each command line's verb and
    argument before the real method runs (unknown verbs too)."""

    def __init__(self, server, methods):
        super().__init__(methods)
        self.server = server

    def get(self, verb, default=None):
        method = super().get(verb, default)
        server = self.server

        async def recorded(arg):
            server.upstream._command(server.conn_no, verb, arg, server.upstream._tls(server))
            return await method(arg)

        if method is None:
            server.upstream._command(server.conn_no, verb, None, server.upstream._tls(server))
            return None
        return recorded


class _UpstreamSMTP(SMTP):
    def __init__(self, upstream, **kw):
        self.upstream = upstream
        self.conn_no = upstream._new_conn()
        super().__init__(upstream, **kw)
        self._smtp_methods = _Methods(self, self._smtp_methods)

    async def smtp_STARTTLS(self, arg):
        if self.upstream.starttls_reply and not arg:
            await self.push(self.upstream.starttls_reply)
            return
        await super().smtp_STARTTLS(arg)


class _Controller(Controller):
    """A Controller on a socket bound by us to port 0 (no race for a
    port), whose SMTP instances record into the upstream."""

    def __init__(self, upstream, host=LOOPBACK, port=0, **kw):
        self.upstream = upstream
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        super().__init__(upstream, hostname=host, port=self.sock.getsockname()[1],
                         ready_timeout=TIMEOUT, **kw)

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self.sock,
                                       ssl=self.ssl_context)

    def factory(self):
        return _UpstreamSMTP(self.upstream, **self.SMTP_kwargs)


class SMTPUpstream(Recorder):
    """An aiosmtpd next hop.

    STARTTLS: advertise STARTTLS; STARTTLS_REPLY: answer STARTTLS with this
    line instead of 220; TLS: "ok", "fail" or "dhe1024" (server_context);
    CERT: the test-CA certificate presented; AUTH: require AUTH (over TLS)
    as AUTH_USER/AUTH_PASSWORD, a wrong one gets SES_AUTH_INVALID;
    MECHANISMS: the AUTH mechanisms offered; MAIL_REPLY: a fixed reply;
    RCPT_REPLIES: {address: reply}; DATA_REPLY: the reply to every end of
    data, or {first recipient: reply}; IMPLICIT: TLS from the first byte
    (SMTPS, as SES on 465) instead of STARTTLS; HOST, PORT: where to listen
    (127.0.0.1 or ::1; port 0: any)."""

    def __init__(self, starttls=True, starttls_reply=None, tls="ok", cert="good", auth=False,
                 mechanisms=("PLAIN", "LOGIN"), mail_reply=None, rcpt_replies=None,
                 data_reply=None, implicit=False, host=LOOPBACK, port=0,
                 name="upstream.example.test"):
        super().__init__()
        self.implicit = implicit
        self.starttls_reply = starttls_reply
        self.mail_reply = mail_reply
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_reply = data_reply
        self.auth = auth
        kw = dict(server_hostname=name, ident="test upstream", timeout=TIMEOUT * 3,
                  enable_SMTPUTF8=False)
        if implicit:
            kw["ssl_context"] = server_context(cert, tls)
        elif starttls:
            kw["tls_context"] = server_context(cert, tls)
        if auth:
            # aiosmtpd only knows STARTTLS: with implicit TLS every command
            # is inside TLS anyway
            kw.update(auth_required=True, auth_require_tls=not implicit,
                      authenticator=self._authenticate,
                      auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in mechanisms])
        self.controller = _Controller(self, host=host, port=port, **kw)
        self.port = self.controller.port
        self.host = host

    def _tls(self, server):
        return self.implicit or server._tls_protocol is not None

    def start(self):
        self.controller.start()
        self.reset()  # forget the controller's own trigger connection
        return self

    def stop(self):
        try:
            self.controller.stop(no_assert=True)
        finally:
            self.controller.sock.close()

    # --- aiosmtpd hooks ----------------------------------------------------
    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login == AUTH_USER.encode() and
              auth_data.password == AUTH_PASSWORD.encode())
        self._auth(server.conn_no, mechanism, auth_data.login.decode("utf-8", "replace"), ok)
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False, message=SES_AUTH_INVALID)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        reply = self.data_reply
        if isinstance(reply, dict):
            reply = reply.get(envelope.rcpt_tos[0])
        if reply:
            return reply
        login = session.login_data
        self._message(Message(server.conn_no, envelope.mail_from, list(envelope.mail_options),
                              list(envelope.rcpt_tos),
                              bytes(envelope.original_content), self._tls(server),
                              login.decode() if isinstance(login, bytes) else login))
        return "250 2.0.0 Ok: queued as UP%04d" % self._queue_id()


# ---------------------------------------------------------------------------
# Raw-socket upstream.

class _Line:
    """Buffered line reading from a socket (plain or TLS) with deadlines."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no line")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def more_within(self, wait):
        """True if bytes beyond the current line arrive (or are buffered)
        within WAIT seconds; they stay buffered."""
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return False
        try:
            self.sock.settimeout(1)
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, socket.timeout):
            return False
        self.buf += data
        return bool(data)


class ThreadedServer:
    """A listening socket on the loopback address with one thread per
    connection: subclasses implement _serve(sock).  stop() closes every
    connection (waking threads blocked in recv) and joins the threads."""

    def _listen(self, host=LOOPBACK, backlog=16):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self._stop = threading.Event()
        self._threads = []
        self._conns = []

    def start(self):
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            except (OSError, ValueError):
                pass
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(TIMEOUT)
        self.sock.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)


class RawUpstream(Recorder, ThreadedServer):
    """A minimal ESMTP server on a plain socket, one thread per connection.

    INJECT: bytes sent in the same write as "220 2.0.0 Ready to start TLS"
    (then the TLS handshake with CERT); TLS: "ok", "tls12" (TLS 1.2 at
    most), "fail" (a handshake that ends with a protocol_version alert: the
    server offers TLS 1.0/1.1 only) or "close" (the connection is closed
    once the ClientHello has arrived, without an alert); EHLO: False answers EHLO with 502 (HELO
    works); PROBE: seconds to wait, before
    answering the EHLO inside TLS and before answering MAIL, for bytes the
    client should not have sent yet (recorded as events "early after EHLO"
    and "pipelined after MAIL"); DROP_AFTER: close the connection, without a
    reply, once this many bytes of message text have arrived, for the first
    DROPS messages; PIPELINING: advertise it; EXTENSIONS: the other EHLO
    keywords (MAIL parameters of others get 555, as a strict server
    does); MAIL_REPLY: a refusal for every MAIL. RCPT without an accepted
    MAIL gets 503, as Postfix answers."""

    def __init__(self, cert="good", inject=b"", tls="ok", ehlo=True, probe=0.0, drop_after=None,
                 drops=1, pipelining=False, extensions=("SIZE 100000000", "8BITMIME"),
                 name="raw.example.test", mail_reply=None):
        super().__init__()
        self.mail_reply = mail_reply
        self.cert = cert
        self.tls_mode = tls
        self.ehlo = ehlo
        self.inject = inject
        self.probe = probe
        self.drop_after = drop_after
        self.drops_left = drops if drop_after is not None else 0
        self.pipelining = pipelining
        self.extensions = list(extensions)
        self.name = name
        self._listen()
        self.ctx = server_context(cert, tls if tls in ("fail", "tls12") else "ok")

    def _serve(self, sock):
        n = self._new_conn()
        held = [sock]  # the socket in use: plain, then TLS
        try:
            self._session(held, n)
        except (OSError, ConnectionError, ssl.SSLError, socket.timeout) as e:
            self._event(n, "ended: %s" % e.__class__.__name__)
        finally:
            try:
                held[0].close()
            except OSError:
                pass

    def _session(self, held, n):
        sock = held[0]
        io = _Line(sock)
        tls = False
        esmtp = False
        mail = None
        rcpts = []
        sock.sendall(b"220 %s ESMTP raw test server\r\n" % self.name.encode())
        while not self._stop.is_set():
            line = io.readline(TIMEOUT * 3)
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            self._command(n, verb, arg, tls)
            if verb == "EHLO" and not self.ehlo:
                sock.sendall(b"502 5.5.2 Error: command not recognized\r\n")
            elif verb in ("EHLO", "HELO"):
                esmtp = verb == "EHLO"
                if tls and self.probe and io.more_within(self.probe):
                    self._event(n, "early after EHLO")
                ext = [self.name] + self.extensions
                if self.pipelining:
                    ext.append("PIPELINING")
                if not tls:
                    ext.append("STARTTLS")
                if verb == "HELO":
                    ext = ext[:1]
                out = "".join("250%s%s\r\n" % ("-" if i < len(ext) - 1 else " ", e)
                              for i, e in enumerate(ext))
                sock.sendall(out.encode())
            elif verb == "STARTTLS" and not tls:
                sock.sendall(b"220 2.0.0 Ready to start TLS\r\n" + self.inject)
                io.buf = b""  # RFC 3207: nothing sent before the handshake counts
                sock.settimeout(TIMEOUT)
                if self.tls_mode == "close":
                    select.select([sock], [], [], TIMEOUT)  # the ClientHello
                    self._event(n, "closed in handshake")
                    return
                try:
                    sock = held[0] = self.ctx.wrap_socket(sock, server_side=True)
                except ssl.SSLError as e:
                    self._event(n, "handshake failed: %s" % e.reason)
                    return
                self._conns.append(sock)
                io = _Line(sock)
                tls = True
                mail, rcpts = None, []
            elif verb == "MAIL":
                if self.probe and not self.pipelining and io.more_within(self.probe):
                    self._event(n, "pipelined after MAIL")
                # a parameter is known when its extension was advertised
                known = {e.split()[0].upper() for e in self.extensions} if esmtp else set()
                if "8BITMIME" in known:
                    known.add("BODY")
                params = {p.split("=")[0].upper() for p in arg.split()[1:]}
                if not params <= known:
                    sock.sendall(b"555 5.5.4 MAIL parameters not recognized\r\n")
                    continue
                if self.mail_reply:
                    sock.sendall(self.mail_reply.encode() + b"\r\n")
                    continue
                mail = arg
                rcpts = []
                sock.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT" and mail is None:
                sock.sendall(b"503 5.5.1 Error: need MAIL command\r\n")
            elif verb == "RCPT":
                m = re.search(r"<([^>]*)>", arg)
                rcpts.append(m.group(1) if m else arg)
                sock.sendall(b"250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                sock.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                content = self._read_data(io, sock, n)
                if content is None:
                    return
                m = re.search(r"<([^>]*)>", mail or "")
                self._message(Message(n, m.group(1) if m else mail, (mail or "").split()[1:],
                                      rcpts, content, tls, None))
                sock.sendall(b"250 2.0.0 Ok: queued as RAW%04d\r\n" % self._queue_id())
                mail, rcpts = None, []
            elif verb in ("RSET", "NOOP"):
                mail, rcpts = (None, []) if verb == "RSET" else (mail, rcpts)
                sock.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                sock.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                sock.sendall(b"502 5.5.2 Command not recognized\r\n")

    def _read_data(self, io, sock, n):
        """The message text (dot-unstuffed), or None after a drop."""
        lines = []
        size = 0
        drop = False
        with self._lock:
            if self.drops_left > 0:
                self.drops_left -= 1
                drop = True
        while True:
            line = io.readline(TIMEOUT * 3)
            if line == b".\r\n":
                return b"".join(lines)
            size += len(line)
            lines.append(line[1:] if line.startswith(b".") else line)
            if drop and size >= self.drop_after:
                self._event(n, "dropped after %d bytes" % size)
                # an abrupt end: RST, as when the next hop is killed
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return None


# ---------------------------------------------------------------------------
# Private Postfix instance.

def postfix_available():
    return shutil.which("postfix") is not None and shutil.which("postconf") is not None


class PostfixUpstream:
    """A Postfix of our own: config_directory, queue_directory and
    data_directory in a temporary directory, smtpd on 127.0.0.1 ports of
    our choice, mail for MYDESTINATION delivered by virtual(8) into
    MAIL/Maildir/ (any local part); relaying only for MYNETWORKS.
    SMTPDS: {name: {postconf -o overrides}} gives one smtpd per name (the
    ports are in .ports).  Needs root (Postfix's master runs as root and
    drops to mail_owner)."""

    SERVICES_DROPPED = ("maildrop", "uucp", "ifmail", "bsmtp", "scalemail-backend", "mailman")

    def __init__(self, smtpds=None, mydestination="example.net", mynetworks="192.0.2.0/24",
                 cert="good"):
        self.tmp = tempfile.mkdtemp(prefix="tlsgate-postfix-")
        os.chmod(self.tmp, 0o755)  # Postfix's unprivileged daemons walk it
        self.conf = os.path.join(self.tmp, "conf")
        self.queue = os.path.join(self.tmp, "queue")
        self.data = os.path.join(self.tmp, "data")
        self.mail = os.path.join(self.tmp, "mail")
        self.log = os.path.join(self.tmp, "postfix.log")
        self.pidfile = os.path.join(self.queue, "pid", "master.pid")
        self.started = False
        self.ports = {}
        pf = pwd.getpwnam("postfix")
        nobody = pwd.getpwnam("nobody")
        for d in (self.conf, self.queue, self.data, self.mail):
            os.mkdir(d)
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        certfile, keyfile = cert_paths(cert)
        self.main_cf = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "myorigin": "$myhostname",
            "mydestination": mydestination,
            "mynetworks": mynetworks,
            "local_recipient_maps": "",
            "local_transport": "virtual",
            "virtual_mailbox_domains": "",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "static:Maildir/",
            "virtual_uid_maps": "static:%d" % nobody.pw_uid,
            "virtual_gid_maps": "static:%d" % nobody.pw_gid,
            "alias_maps": "",
            "alias_database": "",
            "smtpd_tls_cert_file": certfile,
            "smtpd_tls_key_file": keyfile,
            "smtpd_tls_security_level": "may",
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtp_dns_support_level": "disabled",
            "maillog_file": self.log,
            "maillog_file_prefixes": self.tmp,
            "biff": "no",
            "smtpd_banner": "$myhostname ESMTP",
        }
        for name, over in (smtpds or {"smtpd": {}}).items():
            self.ports[name] = (tt.free_port(), dict(over))
        self._write_config()

    def _write_config(self):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in self.main_cf.items():
                f.write("%s = %s\n" % (k, v))
        out = []
        skip = False
        with open("/etc/postfix/master.cf") as f:
            proto = f.read().splitlines()
        for line in proto:
            if not line.strip() or line.startswith("#"):
                continue
            if line[0].isspace():
                if not skip:
                    out.append(line)
                continue
            fields = line.split()
            skip = fields[0] in self.SERVICES_DROPPED or (fields[0] == "smtp" and
                                                           fields[1] == "inet")
            if skip:
                continue
            fields[4] = "n"  # no chroot: the queue is ours, not a prepared jail
            out.append(" ".join(fields))
        for name, (port, over) in self.ports.items():
            out.append("%s:%d inet n - n - - smtpd" % (LOOPBACK, port))
            out.append("  -o syslog_name=postfix/%s" % name)
            for k, v in over.items():
                out.append("  -o %s=%s" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("\n".join(out) + "\n")

    def port_of(self, name):
        return self.ports[name][0]

    @property
    def port(self):
        """The port of the first smtpd."""
        return next(iter(self.ports.values()))[0]

    def _postfix(self, *args, timeout=60):
        return subprocess.run(["postfix", "-c", self.conf] + list(args), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self):
        r = self._postfix("check")
        if r.returncode != 0:
            raise AssertionError("postfix check failed:\n%s%s" % (r.stdout, r.stderr))
        self.started = True  # stop() runs "postfix stop" even after a failed start
        r = self._postfix("start")
        if r.returncode != 0:
            raise AssertionError("postfix start failed:\n%s%s\nlog:\n%s"
                                 % (r.stdout, r.stderr, self.log_text()))
        deadline = time.monotonic() + TIMEOUT
        for name in self.ports:
            while tt._listening(self.port_of(name), False) is False:
                if time.monotonic() > deadline:
                    raise AssertionError("postfix not listening on %d; log:\n%s"
                                         % (self.port_of(name), self.log_text()))
                time.sleep(0.05)
        return self

    def _master_pid(self):
        try:
            with open(self.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        """postfix stop, then waits for the master to be gone; kills it if
        it lingers.  Removes the directory."""
        try:
            if self.started:
                pid = self._master_pid()
                self._postfix("stop", timeout=30)
                self.started = False
                deadline = time.monotonic() + TIMEOUT
                while pid and _alive(pid):
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        break
                    time.sleep(0.05)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def maildir_messages(self):
        new = os.path.join(self.mail, "Maildir", "new")
        return tt.read_maildir_new(new)

    def wait_messages(self, count, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.maildir_messages()
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.05)

    def wait_log(self, regex, timeout=TIMEOUT):
        pat = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = pat.search(self.log_text())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)


def _alive(pid):
    """True while PID exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------
# The gateway as a relay.

RELAY_LISTENER = {"tls": "off", "route": None, "interface": "Relay"}
RELAY_SENDERGROUPS = [("RELAYLIST", {"listener": "out", "match": "127.0.0.0/8",
                                     "action": "relay"})]


class OutboundGateway(tt.Gateway):
    """A Gateway whose process gets ENV added to its environment."""

    def __init__(self, env=None, **kw):
        self.env = dict(env or {})
        super().__init__(**kw)

    def start(self, wait=True, timeout=TIMEOUT):
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return super().start(wait, timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def route(name, domains, port, tls=None, host="localhost", **keys):
    """A [route:NAME] section."""
    k = {"domains": domains, "host": host, "port": str(port), "tls": tls}
    k.update(keys)
    return tt.ini_section("route:" + name, k)


def destination(domain, tls, **keys):
    k = {"tls": tls}
    k.update(keys)
    return tt.ini_section("destination:" + domain, k)


class OutboundTestCase(tt.GatewayTestCase):
    """One gateway per class, a relay in front of the class's upstreams.

    Subclasses set up their next hops in make_peers() (cls.peers: name →
    started upstream) and return the routes and destinations from
    outbound_config(); MX_HOSTS is the TLSGATE_HOSTS_MX file, MX_PEER the
    peer that [gateway] mx_port points at; ENV more environment for the
    gateway."""

    share_gateway = True
    listener_config = {"out": RELAY_LISTENER}
    sendergroups = RELAY_SENDERGROUPS
    mx_hosts = None
    mx_peer = None

    @classmethod
    def make_peers(cls):
        pass

    @classmethod
    def outbound_config(cls):
        return ""

    @classmethod
    def gateway_env(cls):
        return {}

    @classmethod
    def add_peer(cls, name, peer):
        cls.peers[name] = peer
        peer.start()
        return peer

    @classmethod
    def setUpClass(cls):
        cls.peers = {}
        cls.peer_tmp = tempfile.mkdtemp(prefix="tlsgate-outbound-")
        try:
            cls.make_peers()
            super().setUpClass()
        except BaseException:
            cls._stop_peers()
            raise

    @classmethod
    def _stop_peers(cls):
        errors = []
        for p in cls.peers.values():
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        cls.peers = {}
        shutil.rmtree(cls.peer_tmp, ignore_errors=True)
        if errors:
            raise errors[0]

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._stop_peers()

    @classmethod
    def make_gateway(cls, **over):
        g = {"system_trust": "no", "connect_timeout": "5", "delivery_timeout": "20"}
        env = dict(cls.gateway_env())
        if cls.mx_peer is not None:
            g["mx_port"] = str(cls.peers[cls.mx_peer].port)
        if cls.mx_hosts is not None:
            path = os.path.join(cls.peer_tmp, "hosts_mx")
            with open(path, "w") as f:
                f.write(cls.mx_hosts)
            env["TLSGATE_HOSTS_MX"] = path
        g.update(cls.gateway_config)
        kw = dict(gateway=g, listeners=cls.listener_config, sendergroups=cls.sendergroups,
                  extra=cls.outbound_config())
        kw.update(over)
        return OutboundGateway(env=env, **kw)

    def setUp(self):
        super().setUp()
        for p in self.peers.values():
            if isinstance(p, Recorder):
                p.reset()

    # --- helpers -------------------------------------------------------------
    def client(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        return c

    def transaction(self, rcpts, sender="sender@example.org", message=None, client=None,
                    data_timeout=None):
        """MAIL, RCPT..., DATA and MESSAGE on CLIENT (a new one after EHLO
        if None).  (client, [replies])."""
        c = client or self.client()
        message = message if message is not None else tt.simple_message()
        replies = [c.cmd("MAIL FROM:<%s>" % sender)]
        for r in rcpts:
            replies.append(c.cmd("RCPT TO:<%s>" % r, timeout=TIMEOUT * 2))
        if not any(r.code in (250, 251) for r in replies[1:]):
            return c, replies
        replies.append(c.cmd("DATA", timeout=TIMEOUT * 2))
        if replies[-1].code != 354:
            return c, replies
        c.send(message + b".\r\n")
        replies.append(c.reply(timeout=data_timeout or TIMEOUT * 2))
        return c, replies

    def mark(self):
        return self.gw.log_count()

    def dcids(self, port, since=0, timeout=0):
        """DCIDs of the connections to 127.0.0.1:PORT logged after line
        SINCE (waits up to TIMEOUT for the first)."""
        pat = re.compile(r"^New SMTP DCID (\d+) interface \S+ address 127\.0\.0\.1 port %d$"
                         % port)
        deadline = time.monotonic() + timeout
        while True:
            found = [int(m.group(1)) for m in
                     (pat.match(t) for t in self.gw.log_texts(since)) if m]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def dcid_log(self, dcid, since=0, wait_close=True):
        """[(level, text)] of the lines that name DCID, in order; with
        WAIT_CLOSE once "DCID n close" is there."""
        if wait_close:
            self.gw.wait_for_log(r"^DCID %d close$" % dcid, since=since)
        pat = re.compile(r"\bDCID %d\b" % dcid)
        return [(lv, t) for lv, t in self.gw.log_lines()[since:] if pat.search(t)]

    def assertLogMatches(self, lines, patterns, msg=None):
        """LINES ([(level, text)]) match PATTERNS ([(level, regex)]) one to
        one, in order (full matches)."""
        text = "\n".join("%s: %s" % l for l in lines)
        self.assertEqual(len(lines), len(patterns),
                         "%s\nexpected %d lines like\n%s\ngot\n%s" % (
                             msg or "", len(patterns),
                             "\n".join("%s: %s" % p for p in patterns), text))
        for (lv, t), (plv, pat) in zip(lines, patterns):
            self.assertEqual(lv, plv, "%s\n%s" % (msg or "", text))
            self.assertRegex(t, "^(?:%s)$" % pat, "%s\n%s" % (msg or "", text))

    def assertNoSecret(self, secret=AUTH_PASSWORD):
        """SECRET (and its base64 forms as sent in AUTH) is in neither the
        mail log nor standard error."""
        plain = base64.b64encode(b"\0" + AUTH_USER.encode() + b"\0" + secret.encode()).decode()
        login = base64.b64encode(secret.encode()).decode()
        for where, text in (("mail log", self.gw.raw_log()), ("stderr", self.gw.stderr_text())):
            for s in (secret, plain, login):
                self.assertNotIn(s, text, "the secret leaked into the %s" % where)
