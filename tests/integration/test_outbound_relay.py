"""The proxy transaction (SPEC section 1, issue 3): the next hop's replies
reach the client unchanged, a recipient for another route gets 452 4.5.3
and is delivered in a second transaction, delivery sessions are reused
within a client session, an outage or a next hop that dies during DATA
gives the client a 4xx and never a duplicate, MX failover, the client's
MAIL parameters only where the next hop advertises them, no pipelining
unless advertised, HELO only where clear text is allowed, the Received
header, and the message text through unchanged (dot-stuffing)."""

import re
import threading
import time
import unittest

from peers import OutboundTestCase, RawUpstream, SMTPUpstream, destination, route
import tlsgate_test as tt

QUEUED_UP = re.compile(r"^250 2\.0\.0 Ok: queued as UP\d{4}$")
ANOTHER_ROUTE = "4.5.3 Recipient for another route: send it in a new transaction"

MX_HOSTS = """\
example.net 10 mx.example.test
mx.example.test A 127.0.0.1
# two MX hosts: the preferred one refuses connections (nothing listens on
# 127.0.0.2), the next one takes the mail
multi.example 10 mx1.multi.example
multi.example 20 mx2.multi.example
mx1.multi.example A 127.0.0.2
mx2.multi.example A 127.0.0.1
"""


class TwoRoutesTest(OutboundTestCase):
    """example.org through a static route, example.net by MX: a client
    transaction can only go to one of them."""

    mx_peer = "net"
    mx_hosts = MX_HOSTS

    @classmethod
    def make_peers(cls):
        cls.add_peer("org", SMTPUpstream())
        cls.add_peer("net", SMTPUpstream())

    @classmethod
    def outbound_config(cls):
        return (route("org", "example.org", cls.peers["org"].port, tls="required-verify")
                + destination("example.net", "required-verify")
                + destination("multi.example", "required"))

    def test_second_domain_gets_452(self):
        org, net = self.peers["org"], self.peers["net"]
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<a@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.net>"), 452, ANOTHER_ROUTE)
        self.assertReply(c.cmd("RCPT TO:<c@example.org>"), 250)  # same route: fine
        self.assertReply(c.cmd("DATA"), 354)
        c.send(tt.simple_message("first") + b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED_UP)
        # the client resends the refused recipient in a new transaction
        _, replies = self.transaction(["b@example.net"], client=c,
                                      message=tt.simple_message("second"))
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        self.assertEqual([(m.rcpt_tos, b"Subject: first" in m.content)
                          for m in org.wait_messages(1)], [(["a@example.org", "c@example.org"],
                                                            True)])
        self.assertEqual([(m.rcpt_tos, b"Subject: second" in m.content)
                          for m in net.wait_messages(1)], [(["b@example.net"], True)])
        time.sleep(0.2)
        self.assertEqual(len(org.messages) + len(net.messages), 2, "nothing delivered twice")
        d = self.dcids(org.port, mark)[0]
        # RIDs number the accepted recipients of the message
        self.gw.wait_for_log(r"^Delivery start DCID %d MID \d+ to RID \[0, 1\]$" % d, since=mark)
        self.gw.wait_for_log(r"^Message done DCID %d MID \d+ to RID \[0, 1\]$" % d, since=mark)

    def test_smtplib_resends_refused_recipient(self):
        org, net = self.peers["org"], self.peers["net"]
        s = self.gw.smtplib()
        refused = s.sendmail("sender@example.org", ["a@example.org", "b@example.net"],
                             tt.simple_message("smtplib"))
        self.assertEqual(refused, {"b@example.net": (452, ANOTHER_ROUTE.encode())})
        self.assertEqual(s.sendmail("sender@example.org", list(refused),
                                    tt.simple_message("smtplib")), {})
        s.quit()
        self.assertEqual([m.rcpt_tos for m in org.wait_messages(1)], [["a@example.org"]])
        self.assertEqual([m.rcpt_tos for m in net.wait_messages(1)], [["b@example.net"]])
        time.sleep(0.2)
        self.assertEqual((len(org.messages), len(net.messages)), (1, 1))

    def test_session_reused_for_same_route(self):
        org = self.peers["org"]
        mark = self.mark()
        c, replies = self.transaction(["a@example.org"], message=tt.simple_message("one"))
        self.assertReply(replies[-1], 250, QUEUED_UP)
        _, replies = self.transaction(["b@example.org"], client=c, message=tt.simple_message("two"))
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        msgs = org.wait_messages(2)
        self.assertEqual([m.rcpt_tos for m in msgs], [["a@example.org"], ["b@example.org"]])
        self.assertEqual(org.connections, 1, "one delivery session for both messages")
        d = self.dcids(org.port, mark, timeout=tt.TIMEOUT)
        self.assertEqual(len(d), 1, "one New SMTP DCID line")
        lines = [t for _, t in self.dcid_log(d[0], mark)]
        self.assertEqual(len([t for t in lines if t.startswith("Delivery start DCID %d " % d[0])]),
                         2, lines)
        self.assertEqual(lines[-1], "DCID %d close" % d[0])
        self.assertEqual(org.verbs()[-1], ("QUIT", True), "the session ends with QUIT")

    def test_session_replaced_for_another_route(self):
        org, net = self.peers["org"], self.peers["net"]
        mark = self.mark()
        c, replies = self.transaction(["a@example.org"])
        self.assertReply(replies[-1], 250, QUEUED_UP)
        _, replies = self.transaction(["b@example.net"], client=c)
        self.assertReply(replies[-1], 250, QUEUED_UP)
        # the first delivery session ended with QUIT when it was replaced
        d = self.dcids(org.port, mark)[0]
        self.gw.wait_for_log(r"^DCID %d close$" % d, since=mark)
        self.assertEqual(org.verbs()[-1], ("QUIT", True))
        c.cmd("QUIT")
        self.assertEqual(len(net.wait_messages(1)), 1)

    def test_mx_failover(self):
        net = self.peers["net"]
        mark = self.mark()
        c, replies = self.transaction(["user@multi.example"])
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        self.assertEqual([m.rcpt_tos for m in net.wait_messages(1)], [["user@multi.example"]])
        self.gw.wait_for_log(r"^Connection Error: DCID \d+ domain: multi\.example IP: 127\.0\.0\.2 "
                             r"port: %d details: .+ reason: .+" % net.port, since=mark)
        d = self.dcids(net.port, mark)[0]
        self.gw.wait_for_log(r"^Message done DCID %d MID \d+ to RID \[0\]$" % d, since=mark)


class IPv6Test(OutboundTestCase):
    """MX delivery to an IPv6 address (AAAA in the hosts file), and a
    static route to an IPv6 literal."""

    mx_peer = "v4"
    mx_hosts = "v6.example 10 mx6.example\nmx6.example AAAA ::1\n"

    @classmethod
    def make_peers(cls):
        if not tt.ipv6_loopback():
            raise unittest.SkipTest("no IPv6 loopback")
        v4 = cls.add_peer("v4", SMTPUpstream())
        # the MX port is global: the IPv6 next hop listens on the same number
        cls.add_peer("v6", SMTPUpstream(host="::1", port=v4.port))

    @classmethod
    def outbound_config(cls):
        return (destination("v6.example", "required")
                + route("v6lit", "literal.example", cls.peers["v6"].port, host="::1",
                        tls="required"))

    def test_mx_over_ipv6(self):
        up = self.peers["v6"]
        mark = self.mark()
        c, replies = self.transaction(["user@v6.example"])
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        self.assertEqual([m.rcpt_tos for m in up.wait_messages(1)], [["user@v6.example"]])
        self.assertTrue(up.messages[0].tls)
        self.assertEqual(self.peers["v4"].messages, [])
        self.gw.wait_for_log(r"^New SMTP DCID \d+ interface ::1 address ::1 port %d$" % up.port,
                             since=mark)

    def test_route_to_ipv6_literal(self):
        up = self.peers["v6"]
        c, replies = self.transaction(["user@literal.example"])
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        self.assertEqual([m.rcpt_tos for m in up.wait_messages(1)], [["user@literal.example"]])


class PassThroughTest(OutboundTestCase):
    """Every reply of the next hop reaches the client as it was sent."""

    listener_config = {"out": {"tls": "preferred", "route": None, "interface": "Relay"}}

    REFUSED = "550 5.7.1 <sender@example.org>: Sender address rejected: Access denied"
    USER_UNKNOWN = ["550-5.1.1 The email account that you tried to reach does not exist.",
                    "550 5.1.1 https://support.google.com/mail/?p=NoSuchUser"]

    @classmethod
    def make_peers(cls):
        cls.add_peer("main", SMTPUpstream(
            rcpt_replies={"unknown@example.org": "\r\n".join(cls.USER_UNKNOWN),
                          "full@example.org": "452 4.2.2 Mailbox full"},
            data_reply={"tempfail@example.org": "451 4.3.0 Temporary upstream problem"}))
        cls.add_peer("badsender", SMTPUpstream(
            mail_reply="553 5.1.8 <sender@example.org>: Sender address rejected: Domain not found"))
        cls.add_peer("noext", RawUpstream(extensions=()))
        cls.add_peer("refuse", RawUpstream(mail_reply=cls.REFUSED))
        cls.add_peer("refusepipe", RawUpstream(mail_reply=cls.REFUSED, pipelining=True))
        cls.add_peer("ext", RawUpstream(extensions=("SIZE 100000000", "8BITMIME")))

    @classmethod
    def outbound_config(cls):
        return (route("main", "example.org", cls.peers["main"].port, tls="required")
                + route("badsender", "badsender.example", cls.peers["badsender"].port,
                        tls="required")
                + route("noext", "noext.example", cls.peers["noext"].port, tls="required")
                + route("ext", "ext.example", cls.peers["ext"].port, tls="required")
                + route("refuse", "refuse.example", cls.peers["refuse"].port, tls="required")
                + route("refusepipe", "refusepipe.example", cls.peers["refusepipe"].port,
                        tls="required"))

    def test_multiline_rcpt_rejection(self):
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        r = c.cmd("RCPT TO:<unknown@example.org>")
        self.assertEqual(r.lines, self.USER_UNKNOWN)
        self.assertReply(c.cmd("RCPT TO:<full@example.org>"), 452, "4.2.2 Mailbox full")
        self.assertReply(c.cmd("RCPT TO:<known@example.org>"), 250, "2.1.5 Ok")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(tt.simple_message() + b".\r\n")
        self.assertReply(c.reply(), 250, QUEUED_UP)
        c.cmd("QUIT")
        self.assertEqual([m.rcpt_tos for m in self.peers["main"].wait_messages(1)],
                         [["known@example.org"]])
        d = self.dcids(self.peers["main"].port, mark)[0]
        self.gw.wait_for_log(r"^Message done DCID %d MID \d+ to RID \[0\]$" % d, since=mark)
        # the multi-line reply in one log line
        self.gw.wait_for_log(r"^Bounced: DCID %d MID \d+ to RID 0 - 550 - 5\.1\.1 The email "
                             r"account that you tried to reach does not exist\..*5\.1\.1 "
                             r"https://support\.google\.com/mail/\?p=NoSuchUser$" % d, since=mark)

    def test_end_of_data_tempfail(self):
        c, replies = self.transaction(["tempfail@example.org"])
        self.assertReply(replies[-1], 451, "4.3.0 Temporary upstream problem")
        c.cmd("QUIT")

    def test_mail_rejected(self):
        # MAIL goes out with the first RCPT; its refusal answers that RCPT
        c, replies = self.transaction(["user@badsender.example"])
        self.assertEqual(replies[-1].lines, [
            "553 5.1.8 <sender@example.org>: Sender address rejected: Domain not found"])
        self.assertEqual(self.peers["badsender"].messages, [])
        c.cmd("QUIT")

    def test_no_rcpt_after_refused_mail(self):
        # Without PIPELINING the RCPT waits for MAIL's reply and is not sent
        # after a refusal (no transaction: RFC 5321 4.1.4); with it, both go
        # together. Either way the refusal answers the client's RCPT.
        for dom, up, rcpt_sent in (("refuse.example", "refuse", False),
                                   ("refusepipe.example", "refusepipe", True)):
            with self.subTest(next_hop=up):
                self.peers[up].reset()
                c, replies = self.transaction(["user@%s" % dom])
                self.assertEqual(replies[-1].lines, [self.REFUSED])
                c.cmd("QUIT")  # and tlsgate ends its session with the next hop politely
                deadline = time.monotonic() + tt.TIMEOUT
                while time.monotonic() < deadline and ("QUIT", True) not in self.peers[up].verbs():
                    time.sleep(0.05)
                verbs = [v for v, _ in self.peers[up].verbs()]
                self.assertEqual(verbs[-1:], ["QUIT"], verbs)
                self.assertEqual("RCPT" in verbs, rcpt_sent, verbs)

    def test_message_text_unchanged(self):
        body = (b"From: <sender@example.org>\r\nTo: <user@example.org>\r\nSubject: dots\r\n\r\n"
                b".leading dot\r\n..two dots\r\n.\r\n \r\n" + b"x" * 990 + b"\r\n"
                b"\xc3\xa9t\xc3\xa9 8-bit\r\nlast line\r\n")
        stuffed = b"\r\n".join(b"." + l if l.startswith(b".") else l
                               for l in body.split(b"\r\n"))
        c = self.client()
        c.starttls()
        c.ehlo()
        _, replies = self.transaction(["user@example.org"], client=c, message=stuffed)
        self.assertReply(replies[-1], 250, QUEUED_UP)
        c.cmd("QUIT")
        msg = self.peers["main"].wait_messages(1)[0]
        self.assertTrue(msg.content.endswith(body), msg.content[-300:])
        head = msg.content[:len(msg.content) - len(body)]
        self.assertTrue(head.startswith(b"Received: from client.example.test "), head)
        self.assertIn(b"(tlsgate) with ESMTPS", head)
        self.assertRegex(head, rb"using TLSv1\.[23] with cipher ")

    def test_mail_parameters_passed_where_advertised(self):
        for dom, up, want in (("ext.example", "ext", ["SIZE=120", "BODY=8BITMIME"]),
                              ("noext.example", "noext", [])):
            with self.subTest(next_hop=up):
                self.peers[up].reset()
                c = self.client()
                self.assertReply(c.cmd("MAIL FROM:<sender@example.org> SIZE=120 BODY=8BITMIME"),
                                 250)
                r = c.cmd("RCPT TO:<user@%s>" % dom)
                self.assertReply(r, 250, msg="MAIL at the next hop: %r" % [
                    x.arg for x in self.peers[up].commands if x.verb == "MAIL"])
                self.assertReply(c.cmd("DATA"), 354)
                c.send(tt.simple_message() + b".\r\n")
                self.assertReply(c.reply(), 250)
                c.cmd("QUIT")
                msgs = self.peers[up].wait_messages(1)
                self.assertEqual([m.mail_options for m in msgs], [want])


class NextHopBehaviourTest(OutboundTestCase):
    """Pipelining only when advertised; HELO only where clear text is
    allowed; an outage."""

    @classmethod
    def make_peers(cls):
        cls.add_peer("nopipe", RawUpstream(probe=0.3))
        cls.add_peer("pipe", RawUpstream(probe=0.3, pipelining=True))
        cls.add_peer("noehlo", RawUpstream(ehlo=False))
        cls.dead_port = tt.free_port()

    @classmethod
    def outbound_config(cls):
        return (route("nopipe", "nopipe.example", cls.peers["nopipe"].port, tls="required")
                + route("pipe", "pipe.example", cls.peers["pipe"].port, tls="required")
                + route("helo", "helo.example", cls.peers["noehlo"].port, tls="preferred")
                + route("helo2", "helorequired.example", cls.peers["noehlo"].port,
                        tls="required")
                + route("dead", "dead.example", cls.dead_port, host="127.0.0.1", tls="none"))

    def test_no_pipelining_unless_advertised(self):
        up = self.peers["nopipe"]
        c = self.client()
        for i in range(2):
            _, replies = self.transaction(["a@nopipe.example", "b@nopipe.example"], client=c)
            self.assertReply(replies[-1], 250)
        c.cmd("QUIT")
        self.assertEqual(len(up.wait_messages(2)), 2)
        self.assertEqual([e for e in up.events if "pipelined" in e[1]], [],
                         "commands sent before the previous reply to a next hop without "
                         "PIPELINING (RFC 2920)")

    def test_pipelining_when_advertised(self):
        up = self.peers["pipe"]
        c, replies = self.transaction(["a@pipe.example", "b@pipe.example"])
        self.assertReply(replies[-1], 250)
        c.cmd("QUIT")
        self.assertEqual([m.rcpt_tos for m in up.wait_messages(1)],
                         [["a@pipe.example", "b@pipe.example"]])

    def test_helo_fallback_only_in_clear_levels(self):
        up = self.peers["noehlo"]
        c, replies = self.transaction(["user@helo.example"])
        self.assertReply(replies[-1], 250)
        msgs = up.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertFalse(msgs[0].tls)
        self.assertEqual([v for v, _ in up.verbs(1)][:3], ["EHLO", "HELO", "MAIL"])
        up.reset()
        mark = self.mark()
        _, replies = self.transaction(["user@helorequired.example"], client=c)
        c.cmd("QUIT")
        self.assertEqual([v for v, _ in up.verbs(up.connections)], ["EHLO"],
                         "nothing after the refused EHLO "
                         "at a required level (no HELO, no MAIL)")
        # EHLO refused: STARTTLS cannot be offered, the required level is
        # not met, and that is answered and logged as such
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.7\.[04] Delivery to helorequired\.example failed: "))
        self.gw.wait_for_log(r"^DCID \d+ IP 127\.0\.0\.1 TLS was required but could not be "
                             r"successfully negotiated$", since=mark)

    def test_outage(self):
        mark = self.mark()
        c, replies = self.transaction(["user@dead.example"])
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.4\.1 Delivery to dead\.example failed: connection failed \(.+\)$"))
        self.gw.wait_for_log(r"^Connection Error: DCID \d+ domain: dead\.example IP: 127\.0\.0\.1 "
                             r"port: %d details: .+ interface: 127\.0\.0\.1 reason: connection failed$"
                             % self.dead_port, since=mark)
        # the session is still usable
        self.assertReply(c.cmd("RSET"), 250)
        c.cmd("QUIT")


class KilledNextHopTest(OutboundTestCase):
    """The next hop dies in the middle of a large message: the client gets
    a 4xx (never a 250), retries, and the message arrives exactly once."""

    BODY_LINES = 40000  # ~3 MB: more than the socket buffers hold

    @classmethod
    def make_peers(cls):
        cls.add_peer("dies", RawUpstream(drop_after=256 * 1024, drops=1))

    @classmethod
    def outbound_config(cls):
        return route("dies", "example.org", cls.peers["dies"].port, tls="required-verify")

    def big_message(self, subject):
        line = b"0123456789" * 7 + b"\r\n"
        return tt.simple_message(subject, "") + line * self.BODY_LINES

    def send_big(self, c, message):
        """Sends MESSAGE + end of data from a thread (the gateway may stop
        reading); the reply, or the error."""
        errors = []

        def writer():
            try:
                c.sock.settimeout(30)
                c.sock.sendall(message + b".\r\n")
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        t.join(40)
        self.assertFalse(t.is_alive(), "the gateway stopped reading the message text after the "
                         "next hop died (flow control never resumed)")
        self.assertEqual(errors, [], "the gateway dropped the client connection")
        return c.reply(timeout=30)

    def test_killed_during_data(self):
        up = self.peers["dies"]
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        self.assertReply(c.cmd("RCPT TO:<user@example.org>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        r = self.send_big(c, self.big_message("attempt"))
        self.assertEqual(r.code // 100, 4, r)
        self.assertRegex(r.last, r"^451 4\.4\.2 Connection to the next hop lost")
        self.assertTrue(any(e[1].startswith("dropped after") for e in up.events), up.events)
        self.assertEqual(up.messages, [])
        # the client retries (here in the same session)
        _, replies = self.transaction(["user@example.org"], client=c,
                                      message=self.big_message("retry"))
        self.assertReply(replies[-1], 250, re.compile(r"^250 2\.0\.0 Ok: queued as RAW0001$"))
        c.cmd("QUIT")
        msgs = up.wait_messages(1)
        time.sleep(0.3)
        self.assertEqual(len(up.messages), 1, "delivered exactly once")
        self.assertIn(b"Subject: retry", msgs[0].content)
        self.assertTrue(msgs[0].content.endswith(b"0123456789" * 7 + b"\r\n"))
        self.assertEqual(msgs[0].content.count(b"0123456789" * 7), self.BODY_LINES)
        d1 = self.dcids(up.port, mark)[0]
        self.gw.wait_for_log(r"^Connection Error: DCID %d domain: example\.org IP: 127\.0\.0\.1 "
                             r"port: %d details: .+ reason: .+$" % (d1, up.port), since=mark)
        self.assertFalse(any(t.startswith("Message done DCID %d " % d1)
                             for t in self.gw.log_texts(mark)))


if __name__ == "__main__":
    unittest.main()
