"""Sender groups (HAT) and relay control: an accept group may only send to
accept_domains and cannot get through with the classic relay tricks
(%-hack, !-paths, source routes, quoted local parts holding @); a relay
group may send anywhere over the listener's route; a reject group gets 554
and nothing but QUIT; a group matched by forward-confirmed host name.  Each
asserts the replies, the Maildir and the sender-group log line."""

import re
import unittest

from tlsgate_test import (GatewayTestCase, expected_rdns, simple_message)

QUEUED = re.compile(r"^250 2\.0\.0 Ok: queued as (\d+)$")
DENIED = "5.7.1 Relaying denied"

SRC_ACCEPT = "127.0.0.1"   # no group: ALL (accept)
SRC_RELAY = "127.0.0.2"
SRC_REJECT = "127.0.0.3"
SRC_ACCEPT_GROUP = "127.0.0.4"


class RelayControlTest(GatewayTestCase):
    share_gateway = True
    listener_config = {
        "in": {},
        "byname": {"hostname": "byname.example.test"},
    }
    sendergroups = [
        ("RELAYLIST", {"listener": "in", "match": "10.9.8.0/24, " + SRC_RELAY + ", 192.0.2.1",
                       "action": "relay"}),
        ("BLOCKED", {"listener": "in", "match": SRC_REJECT, "action": "reject"}),
        ("PARTNERS", {"listener": "in", "match": "127.0.0.4/32", "action": "accept"}),
        ("NAMED", {"listener": "byname", "match": "localhost", "action": "reject"}),
    ]

    def session(self, src, listener="in"):
        c = self.gw.connect(source=src, listener=listener)
        self.assertEqual(c.greeting.code, 220, c.greeting.text)
        self.ehlo_ok(c)
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        return c

    def assertRcpt(self, c, path, code):
        r = c.cmd("RCPT TO:<%s>" % path)
        if code == 250:
            self.assertReply(r, 250, "2.1.5 Ok", "RCPT TO:<%s>" % path)
        elif code == 550:
            self.assertReply(r, 550, DENIED, "RCPT TO:<%s>" % path)
        else:
            self.assertEqual(r.code, code, "RCPT TO:<%s>: %s" % (path, r.text))

    # --- accept group --------------------------------------------------------
    def test_accept_group_local_domains(self):
        c = self.session(SRC_ACCEPT)
        for rcpt in ("user@example.test", "USER@EXAMPLE.TEST", "user@Sub.Example.Test",
                     "a.b+tag@deep.sub.example.test", "user@example.test."):
            with self.subTest(rcpt=rcpt):
                r = c.cmd("RCPT TO:<%s>" % rcpt)
                if rcpt.endswith("."):
                    # a trailing dot is either refused as syntax or accepted
                    self.assertIn(r.code, (250, 501), r.text)
                else:
                    self.assertReply(r, 250, "2.1.5 Ok")

    def test_accept_group_foreign_domains_denied(self):
        c = self.session(SRC_ACCEPT)
        for rcpt in ("user@example.org", "user@notexample.test", "user@example.test.evil.org",
                     "user@example.testx", "user@test"):
            with self.subTest(rcpt=rcpt):
                self.assertRcpt(c, rcpt, 550)
        for rcpt in ("user@[127.0.0.1]", "user@[IPv6:::1]"):
            with self.subTest(rcpt=rcpt):
                # an address literal is no accept domain (or not supported)
                r = c.cmd("RCPT TO:<%s>" % rcpt)
                self.assertIn(r.code, (550, 501), r.text)
        # a denied recipient does not end the transaction
        self.assertRcpt(c, "user@example.test", 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(simple_message("partly denied") + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d ACCEPT SG ALL match ALL SBRS None" % c.icid)
        rcpts = [l for l in log if " To: " in l]
        self.assertEqual(rcpts, ["MID %d ICID %d RID 0 To: <user@example.test>" % (mid, c.icid)])

    def test_relay_tricks_refused(self):
        tricks = [
            "user%example.org@example.test",          # %-hack
            "user%example.org%example.test@example.test",
            "example.org!user@example.test",          # !-path (UUCP)
            "example.org!user%example.net@example.test",
            '"user@example.org"@example.test',        # quoted local part with @
            '"user%example.org"@example.test',
            '"example.org!user"@example.test',
            "@example.test:user@example.org",         # source route to a foreign domain
            "@example.test,@sub.example.test:user@example.org",
        ]
        for src in (SRC_ACCEPT, SRC_ACCEPT_GROUP):
            c = self.session(src)
            for t in tricks:
                with self.subTest(src=src, rcpt=t):
                    self.assertRcpt(c, t, 550)
            c.cmd("QUIT")

    def test_source_route_stripped(self):
        c = self.session(SRC_ACCEPT)
        # the route is stripped and the final domain decides
        self.assertRcpt(c, "@example.org:user@example.test", 250)
        self.assertRcpt(c, "@a.example.org,@b.example.org:user2@example.test", 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(simple_message("source route") + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        rcpts = [l for l in log if " To: " in l]
        self.assertEqual(rcpts, [
            "MID %d ICID %d RID 0 To: <user@example.test>" % (mid, c.icid),
            "MID %d ICID %d RID 1 To: <user2@example.test>" % (mid, c.icid)])

    def test_accept_group_named(self):
        c = self.session(SRC_ACCEPT_GROUP)
        self.assertRcpt(c, "user@example.test", 250)
        self.assertRcpt(c, "user@example.org", 550)
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d ACCEPT SG PARTNERS match 127.0.0.4/32 SBRS None"
                         % c.icid)

    # --- relay group ---------------------------------------------------------
    def test_relay_group_sends_anywhere(self):
        c = self.session(SRC_RELAY)
        for rcpt in ("user@example.org", "someone@example.net", "user@example.test",
                     "user%example.net@example.com"):
            with self.subTest(rcpt=rcpt):
                self.assertRcpt(c, rcpt, 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(simple_message("relayed") + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, QUEUED)
        mid = int(QUEUED.match(r.last).group(1))
        c.cmd("QUIT")
        msgs = self.gw.wait_messages(1)
        self.assertTrue(any(b"Subject: relayed\n" in m for m in msgs))
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d RELAY SG RELAYLIST match %s SBRS None"
                         % (c.icid, SRC_RELAY))
        self.assertIn("MID %d ICID %d RID 0 To: <user@example.org>" % (mid, c.icid), log)
        self.assertIn("MID %d ICID %d RID 1 To: <someone@example.net>" % (mid, c.icid), log)

    # --- reject group --------------------------------------------------------
    def test_reject_group(self):
        c = self.gw.connect(source=SRC_REJECT)
        self.assertEqual(c.greeting.lines, ["554 5.7.1 Access denied"])
        for cmd in ("EHLO client.example.test", "HELO client.example.test",
                    "MAIL FROM:<a@example.org>", "RCPT TO:<user@example.test>", "DATA",
                    "STARTTLS", "NOOP", "RSET", "VRFY user", "HELP", "FROB"):
            with self.subTest(cmd=cmd):
                self.assertReply(c.cmd(cmd), 503, "5.7.1 Access denied")
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0 Bye")
        self.assertClosed(c)
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d REJECT SG BLOCKED match %s SBRS None"
                         % (c.icid, SRC_REJECT))
        self.assertEqual(log[-1], "ICID %d close" % c.icid)
        self.assertFalse(any("Start MID" in l for l in log), log)

    def test_reject_group_pipelined(self):
        c = self.gw.connect(source=SRC_REJECT)
        self.assertEqual(c.greeting.code, 554)
        c.send(b"EHLO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<u@example.test>\r\n"
               b"DATA\r\nSubject: rejected pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        codes = []
        while True:
            r = c.reply()
            codes.append(r.code)
            if r.code == 221:
                break
        self.assertNotIn(250, codes)
        self.assertNotIn(354, codes)
        self.assertFalse(any(b"rejected pipelined" in m
                             for m in self.gw.maildir_messages(check_tmp=False)))

    # --- group by host name ----------------------------------------------------
    def test_group_matched_by_verified_name(self):
        name, verified = expected_rdns("127.0.0.1")
        if name != "localhost" or verified != "yes":
            self.skipTest("127.0.0.1 does not resolve to a verified localhost here")
        c = self.gw.connect(listener="byname")
        self.assertEqual(c.greeting.lines, ["554 5.7.1 Access denied"])
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertRegex(log[0], r" reverse dns host localhost verified yes$")
        self.assertEqual(log[1], "ICID %d REJECT SG NAMED match localhost SBRS None" % c.icid)

    def test_group_scoped_to_listener(self):
        # NAMED applies to "byname" only; 127.0.0.2 is RELAYLIST on "in" only
        c = self.gw.connect(listener="byname", source=SRC_RELAY)
        self.assertEqual(c.greeting.code, 220)
        self.ehlo_ok(c, "byname.example.test")
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250, "2.1.0 Ok")
        self.assertRcpt(c, "user@example.org", 550)
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d ACCEPT SG ALL match ALL SBRS None" % c.icid)


class AllGroupTest(GatewayTestCase):
    """[sendergroup:ALL] configures the clients that match no group."""
    share_gateway = True
    sendergroups = [
        ("RELAYLIST", {"match": "127.0.0.2", "action": "relay"}),
        ("ALL", {"action": "reject"}),
    ]

    def test_unmatched_client_gets_all_group(self):
        c = self.gw.connect()
        self.assertEqual(c.greeting.lines, ["554 5.7.1 Access denied"])
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d REJECT SG ALL match ALL SBRS None" % c.icid)

    def test_matched_client(self):
        c = self.gw.connect(source="127.0.0.2")
        self.assertEqual(c.greeting.code, 220)
        c.cmd("QUIT")
        log = self.gw.session_log(c.icid)
        self.assertEqual(log[1], "ICID %d RELAY SG RELAYLIST match 127.0.0.2 SBRS None"
                         % c.icid)


if __name__ == "__main__":
    unittest.main()
