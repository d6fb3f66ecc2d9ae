"""Connection caps (total and per client address: 421 4.7.0) and timeouts
that a trickling client cannot stretch: the deadline for a whole command
line, for the TLS handshake, the idle timeout, and the minimum data rate.
Small values are set in the test configuration so the tests take seconds."""

import ssl
import time
import unittest

from tlsgate_test import HOSTNAME, GatewayTestCase, client_context

TIMEOUT_REPLY = "4.4.2 %s Error: timeout exceeded" % HOSTNAME


class ConnectionCapTest(GatewayTestCase):
    listener_config = {"in": {"max_connections": "3", "max_connections_per_ip": "2"}}

    def open(self, src):
        return self.gw.connect(source=src)

    def test_per_ip_and_total_caps(self):
        c1 = self.open("127.0.0.1")
        c2 = self.open("127.0.0.1")
        self.assertEqual(c1.greeting.code, 220)
        self.assertEqual(c2.greeting.code, 220)
        c3 = self.open("127.0.0.1")
        self.assertEqual(c3.greeting.lines, ["421 4.7.0 Too many connections from your address"])
        self.assertClosed(c3)
        c4 = self.open("127.0.0.2")
        self.assertEqual(c4.greeting.code, 220, c4.greeting.text)
        c5 = self.open("127.0.0.3")
        self.assertEqual(c5.greeting.lines, ["421 4.7.0 Too many connections, try again later"])
        self.assertClosed(c5)
        # the sessions inside the caps work normally
        self.ehlo_ok(c2)
        self.assertReply(c2.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0 Ok")
        # a slot freed by QUIT is available again
        self.assertReply(c1.cmd("QUIT"), 221, "2.0.0 Bye")
        self.assertClosed(c1)
        self.gw.wait_for_log(r"^ICID %d close$" % c1.icid)
        c6 = self.open("127.0.0.1")
        self.assertEqual(c6.greeting.code, 220, c6.greeting.text)

    def test_refused_connections_do_not_leak_slots(self):
        keep = [self.open("127.0.0.1"), self.open("127.0.0.1")]
        for _ in range(5):
            c = self.open("127.0.0.1")
            self.assertEqual(c.greeting.code, 421)
            self.assertClosed(c)
        for c in keep:
            c.cmd("QUIT")
            self.assertClosed(c)
            self.gw.wait_for_log(r"^ICID %d close$" % c.icid)
        again = [self.open("127.0.0.%d" % i) for i in (1, 1, 5)]
        self.assertEqual([c.greeting.code for c in again], [220, 220, 220])

    def test_abrupt_disconnects_free_slots(self):
        for _ in range(3):
            a = self.open("127.0.0.1")
            b = self.open("127.0.0.1")
            self.assertEqual((a.greeting.code, b.greeting.code), (220, 220))
            a.close()
            b.close()
            self.gw.wait_for_log(r"^ICID %d lost$" % a.icid)
            self.gw.wait_for_log(r"^ICID %d lost$" % b.icid)


class ChurnTest(GatewayTestCase):
    """Clients that vanish at every stage: the gateway keeps serving (and
    the sanitizers see every close path)."""
    share_gateway = True

    def test_connections_dropped_at_every_stage(self):
        import socket
        stages = 0
        for i in range(30):
            # dropped before the greeting is read
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=5)
            s.close()
            # reset (RST) after the greeting
            c = self.gw.connect()
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
            # dropped after STARTTLS, mid-handshake, in DATA, after TLS
            c = self.gw.connect()
            c.ehlo()
            c.cmd("STARTTLS")
            c.send(b"\x16\x03\x01\x00\xff\x01")
            c.close()
            c = self.gw.connect()
            c.ehlo()
            c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
            for _ in range(3):
                c.reply()
            c.send(b"Subject: x\r\n\r\n" + b"y" * 5000)
            c.close()
            c = self.gw.connect()
            c.ehlo()
            c.starttls()
            c.ehlo()
            c.close()
            stages += 5
        self.assertEqual(stages, 150)
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        self.assertEqual(self.gw.maildir_messages(), [])


class TimeoutTest(GatewayTestCase):
    share_gateway = True
    listener_config = {"in": {"command_timeout": "2", "tls_handshake_timeout": "2",
                              "idle_timeout": "3", "data_min_rate": "1000"}}

    def trickle(self, c, data, interval=0.5, limit=10.0):
        """Sends DATA one byte per INTERVAL until the server says something
        or closes; returns the seconds from the first byte."""
        start = time.monotonic()
        for i in range(len(data)):
            try:
                c.send(data[i:i + 1])
            except OSError:
                break
            if c.pending(interval) or time.monotonic() - start > limit:
                break
        closed, _ = c.wait_closed(max(0.5, limit - (time.monotonic() - start)))
        return time.monotonic() - start

    def assertTimeoutReply(self, c):
        lines = c.buf.split(b"\r\n")
        self.assertEqual(lines[0].decode(), "421 " + TIMEOUT_REPLY, c.buf)

    def test_trickled_command_line(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        elapsed = self.trickle(c, b"NOOP " + b"x" * 100)
        self.assertTimeoutReply(c)
        self.assertLess(elapsed, 4.0, "the command deadline was stretched by the trickle")
        self.assertGreater(elapsed, 1.5)
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[-1], "ICID %d lost" % c.icid)

    def test_trickle_before_ehlo(self):
        c = self.gw.connect()
        elapsed = self.trickle(c, b"EHLO " + b"a" * 100)
        self.assertTimeoutReply(c)
        self.assertLess(elapsed, 4.0)

    def test_idle_timeout(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        start = time.monotonic()
        closed, data = c.wait_closed(10)
        elapsed = time.monotonic() - start
        self.assertTrue(closed)
        self.assertTimeoutReply(c)
        self.assertGreater(elapsed, 2.5)
        self.assertLess(elapsed, 6.0)
        self.assertEqual(self.gw.session_log(c.icid)[-1], "ICID %d lost" % c.icid)

    def test_idle_in_data(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: stalled\r\n\r\npartial")
        start = time.monotonic()
        closed, _ = c.wait_closed(10)
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - start, 6.0)
        self.assertTimeoutReply(c)
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(l.startswith("MID ") and " aborted: " in l for l in log), log)
        self.assertEqual(log[-1], "ICID %d lost" % c.icid)
        msgs = self.gw.maildir_messages()
        self.assertFalse(any(b"stalled" in m for m in msgs))

    def test_handshake_timeout_silent_client(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
        start = time.monotonic()
        closed, data = c.wait_closed(10)
        elapsed = time.monotonic() - start
        self.assertTrue(closed)
        self.assertNotIn(b"250", data)
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[-1], "ICID %d lost" % c.icid)
        self.assertFalse(any("TLS success" in l for l in log), log)

    def test_handshake_timeout_trickled_client_hello(self):
        # a real ClientHello, one byte per 0.4 s: the deadline is for the
        # whole handshake, not reset by each byte
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_context().wrap_bio(inc, out, server_hostname=HOSTNAME)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read()
        self.assertGreater(len(hello), 50)
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0 Ready to start TLS")
        elapsed = self.trickle(c, hello, interval=0.4, limit=10)
        self.assertLess(elapsed, 4.0, "the handshake deadline was stretched by the trickle")
        self.assertTrue(c.wait_closed(1)[0])
        self.assertEqual(self.gw.session_log(c.icid)[-1], "ICID %d lost" % c.icid)

    def test_slow_data_rate(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        # 10 bytes/second against a minimum of 1000, each line complete in time
        elapsed = self.trickle(c, b"Subject: slow\r\n\r\n" + b"ab\r\n" * 200, interval=0.1,
                               limit=20)
        closed, _ = c.wait_closed(1)
        self.assertTrue(closed, "a client at 10 bytes/s was not disconnected")
        self.assertLess(elapsed, 20)
        if c.buf:
            self.assertTrue(c.buf.startswith(b"421 4.4.2 "), c.buf)
        log = self.gw.session_log(c.icid)
        self.assertTrue(any(l.startswith("MID ") and " aborted: " in l for l in log), log)
        self.assertFalse(any(b"Subject: slow" in m for m in self.gw.maildir_messages()))

    def test_fast_client_unaffected(self):
        c = self.gw.connect()
        self.ehlo_ok(c)
        for _ in range(3):
            time.sleep(1.0)
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0 Ok")
        c.starttls()
        c.ehlo()
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")


if __name__ == "__main__":
    unittest.main()
