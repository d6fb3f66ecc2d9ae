"""PROXY protocol on a listener (SPEC sections 4 and 9; the contract is in
src/proxy.h): a real HAProxy in front (`send-proxy` for v1, `send-proxy-v2`
for v2) and clients bound to 127.0.0.2 connecting through it.  The mail log,
the sender group and the Received header show the ORIGINAL client address,
and the message goes through.  Also, with headers written by hand from the
trusted address 127.0.0.1: an address in the header replaces the peer's for
the sender group; v1 UNKNOWN / v2 LOCAL keep the real peer; garbage, the
other version's header, or nothing at all closes the connection without a
single SMTP byte and logs "Warning: listener in: invalid PROXY header from
IP: REASON"; a peer outside proxy_from is an ordinary SMTP client; the
per-address connection cap counts original addresses, not the balancer's.

HAProxy is our own foreground process (`haproxy -f CFG -db`) on an ephemeral
port, stopped by its PID in tearDown."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import unittest

from tlsgate_test import (TIMEOUT, GatewayTestCase, SMTPClient, _listening, expected_rdns,
                          free_port, simple_message, split_received, unfold_header)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
COMMAND_TIMEOUT = 2  # the listener's; a trusted peer gets this long for its header


def new_line(icid, ip, local="127.0.0.1", interface="Data 1"):
    name, verified = expected_rdns(ip)
    return ("New SMTP ICID %d interface %s (%s) address %s reverse dns host %s verified %s"
            % (icid, interface, local, ip, name, verified))


def v1_header(src, dst, sport, dport):
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src, dst, sport, dport)).encode("ascii")


def v2_header(src, dst, sport, dport):
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIG + b"\x21\x11" + struct.pack("!H", len(block)) + block


class HAProxy:
    """One `haproxy -db` process: a TCP frontend on 127.0.0.1:PORT whose
    only server is BACKEND_PORT, reached with SEND_PROXY ("send-proxy" or
    "send-proxy-v2")."""

    def __init__(self, tmp, backend_port, send_proxy):
        self.port = free_port("127.0.0.1")
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        self.log_path = os.path.join(tmp, "haproxy.log")
        with open(self.cfg, "w") as f:
            f.write("global\n"
                    "    maxconn 100\n"
                    "defaults\n"
                    "    mode tcp\n"
                    "    timeout connect 5s\n"
                    "    timeout client 30s\n"
                    "    timeout server 30s\n"
                    "frontend smtp\n"
                    "    bind 127.0.0.1:%d\n"
                    "    default_backend tlsgate\n"
                    "backend tlsgate\n"
                    "    server gw 127.0.0.1:%d %s\n" % (self.port, backend_port, send_proxy))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-f", self.cfg, "-db"], cwd=tmp,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self._wait_listening()

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _wait_listening(self):
        deadline = time.monotonic() + TIMEOUT
        while _listening(self.port, False) is not True:
            if self.proc.poll() is not None:
                self.stop()
                raise AssertionError("haproxy exited with %s:\n%s"
                                     % (self.proc.returncode, self.output()))
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("haproxy not listening on %d:\n%s"
                                     % (self.port, self.output()))
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


class _ProxyProtocolTests:
    """The tests, for a listener of version VERSION; the subclasses say how
    HAProxy sends the header and how to write one by hand."""

    version = None          # "v1" | "v2"
    send_proxy = None       # HAProxy's server keyword
    header = None           # header(src, dst, sport, dport) -> bytes
    local_header = None     # v1 UNKNOWN / v2 LOCAL
    other_header = None     # the other version's header
    other_reason = None     # the parser's reason for it
    bad_header = None       # a header of this version that is invalid
    bad_reason = None

    sendergroups = [("RELAYLIST", {"match": "127.0.0.2", "action": "relay"})]

    @classmethod
    def setUpClass(cls):
        if not os.access(HAPROXY, os.X_OK):
            raise unittest.SkipTest("haproxy is not installed (tools/deps installs it)")
        super().setUpClass()

    def setUp(self):
        self.haproxy = None
        super().setUp()

    def tearDown(self):
        if self.haproxy is not None:
            self.haproxy.stop()
            self.haproxy = None
        super().tearDown()

    # --- helpers -----------------------------------------------------------
    def start_haproxy(self):
        self.haproxy = HAProxy(self.gw.tmp, self.gw.port, self.send_proxy)
        return self.haproxy

    def via_haproxy(self, source="127.0.0.2", greeting=True):
        return SMTPClient(self.haproxy.port, host="127.0.0.1", source=source,
                          greeting=greeting, gateway=self.gw)

    def raw(self, data, greeting=True):
        """A connection from the trusted 127.0.0.1 that sends DATA first."""
        c = SMTPClient(self.gw.port, host="127.0.0.1", source="127.0.0.1", greeting=False,
                       gateway=self.gw)
        c.send(data)
        if greeting:
            c.greeting = c.reply()
        return c

    def transaction(self, c, rcpt, subject):
        replies = c.mail_transaction("sender@example.org", [rcpt],
                                     simple_message(subject) + b".\r\n")
        return replies[-1]

    def assertRefused(self, c, reason, timeout=5):
        """C is closed without one byte and the Warning names REASON."""
        data = self.assertClosed(c, timeout)
        self.assertEqual(data, b"", "SMTP bytes sent to a peer whose PROXY header was invalid")
        self.gw.wait_for_log(r"^listener in: invalid PROXY header from 127\.0\.0\.1: %s$"
                             % re.escape(reason), level="Warning")

    # --- through HAProxy ---------------------------------------------------
    def test_relay_through_haproxy(self):
        self.start_haproxy()
        c = self.via_haproxy()
        self.assertReply(c.greeting, 220)
        self.ehlo_ok(c)
        reply = self.transaction(c, "x@example.org", "via haproxy " + self.version)
        self.assertReply(reply, 250, QUEUED)
        mid = int(QUEUED.match(reply.last).group(1))
        self.assertReply(c.cmd("QUIT"), 221)
        n = c.icid  # the "New SMTP ICID" line with address 127.0.0.2
        log = self.gw.session_log(n)
        self.assertEqual(log[:3], [
            new_line(n, "127.0.0.2"),
            "ICID %d RELAY SG RELAYLIST match 127.0.0.2 SBRS None" % n,
            "Start MID %d ICID %d" % (mid, n),
        ])
        self.assertIn("MID %d done" % mid, log)
        msgs = self.gw.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        received, _ = split_received(msgs[0])
        self.assertIsNotNone(received, msgs[0][:200])
        value = unfold_header(received.decode("utf-8", "replace"), "Received")
        self.assertIn("[127.0.0.2]", value)

    def test_group_from_original_address(self):
        """127.0.0.3 through the same HAProxy is not in RELAYLIST."""
        self.start_haproxy()
        c = self.via_haproxy(source="127.0.0.3")
        self.assertReply(c.greeting, 220)
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@example.org>"), 550, "5.7.1 Relaying denied")
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        c.cmd("QUIT")
        n = c.icid
        self.assertEqual(self.gw.session_log(n)[:2], [
            new_line(n, "127.0.0.3"),
            "ICID %d ACCEPT SG ALL match ALL SBRS None" % n,
        ])

    def test_per_ip_cap_counts_original_addresses(self):
        """Every connection comes from HAProxy's 127.0.0.1; the cap of 2 per
        address applies to the clients behind it."""
        self.start_haproxy()
        others = [self.via_haproxy(source=ip) for ip in ("127.0.0.3", "127.0.0.4", "127.0.0.5")]
        for c in others:
            self.assertReply(c.greeting, 220)
        same = [self.via_haproxy(source="127.0.0.2") for _ in range(3)]
        self.assertReply(same[0].greeting, 220)
        self.assertReply(same[1].greeting, 220)
        self.assertEqual(same[2].greeting.lines,
                         ["421 4.7.0 Too many connections from your address"])

    # --- headers by hand ---------------------------------------------------
    def test_header_address_replaces_peer(self):
        c = self.raw(self.header("127.0.0.2", "127.0.0.1", 40000, self.gw.port))
        self.assertReply(c.greeting, 220)
        self.ehlo_ok(c)
        self.assertReply(self.transaction(c, "x@example.org", "raw header"), 250, QUEUED)
        c.cmd("QUIT")
        n = self.gw.claim_icid("127.0.0.2", c.log_mark)
        self.assertEqual(self.gw.session_log(n)[:2], [
            new_line(n, "127.0.0.2"),
            "ICID %d RELAY SG RELAYLIST match 127.0.0.2 SBRS None" % n,
        ])

    def test_local_keeps_real_peer(self):
        c = self.raw(self.local_header)
        self.assertReply(c.greeting, 220)
        self.ehlo_ok(c)
        c.cmd("QUIT")
        n = c.icid
        self.assertEqual(self.gw.session_log(n)[:2], [
            new_line(n, "127.0.0.1"),
            "ICID %d ACCEPT SG ALL match ALL SBRS None" % n,
        ])

    def test_garbage_closes_without_reply(self):
        c = self.raw(b"EHLO client.example.test\r\n", greeting=False)
        self.assertRefused(c, "not a PROXY %s header" % self.version)

    def test_other_version_closes_without_reply(self):
        c = self.raw(self.other_header, greeting=False)
        self.assertRefused(c, self.other_reason)

    def test_bad_header_closes_without_reply(self):
        c = self.raw(self.bad_header, greeting=False)
        self.assertRefused(c, self.bad_reason)

    def test_no_header_times_out_without_reply(self):
        c = self.raw(b"", greeting=False)
        self.assertEqual(c.pending(wait=COMMAND_TIMEOUT - 1), b"")
        self.assertRefused(c, "timeout", timeout=COMMAND_TIMEOUT + 5)

    def test_untrusted_peer_is_direct_client(self):
        """127.0.0.2 is not in proxy_from: plain SMTP, no header expected."""
        c = self.gw.connect(source="127.0.0.2")
        self.assertReply(c.greeting, 220)
        self.ehlo_ok(c)
        self.assertReply(self.transaction(c, "x@example.org", "direct"), 250, QUEUED)
        c.cmd("QUIT")
        n = c.icid
        self.assertEqual(self.gw.session_log(n)[:2], [
            new_line(n, "127.0.0.2"),
            "ICID %d RELAY SG RELAYLIST match 127.0.0.2 SBRS None" % n,
        ])


def proxy_listener(version):
    return {"in": {"proxy_protocol": version,
                   "proxy_from": "127.0.0.1",
                   "command_timeout": str(COMMAND_TIMEOUT),
                   "max_connections_per_ip": "2"}}


class ProxyProtocolV1Test(_ProxyProtocolTests, GatewayTestCase):
    listener_config = proxy_listener("v1")
    version = "v1"
    send_proxy = "send-proxy"
    header = staticmethod(v1_header)
    local_header = b"PROXY UNKNOWN\r\n"
    other_header = V2_SIG + b"\x20\x00\x00\x00"
    other_reason = "not a PROXY v1 header"
    bad_header = b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 65536\r\n"
    bad_reason = "bad v1 destination port"


class ProxyProtocolV2Test(_ProxyProtocolTests, GatewayTestCase):
    listener_config = proxy_listener("v2")
    version = "v2"
    send_proxy = "send-proxy-v2"
    header = staticmethod(v2_header)
    local_header = V2_SIG + b"\x20\x00\x00\x00"
    other_header = b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 25\r\n"
    other_reason = "not a PROXY v2 header"
    bad_header = V2_SIG + b"\x21\x12\x00\x0c" + bytes(12)  # UDP over IPv4
    bad_reason = "v2 family is not TCP over IPv4/IPv6"


if __name__ == "__main__":
    unittest.main()
