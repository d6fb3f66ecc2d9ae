"""Outbound TLS levels (SPEC section 3, issue 3): for each of the five
levels none / preferred / required / preferred-verify / required-verify and
each upstream behaviour (no STARTTLS; STARTTLS answered 454; a handshake
that fails with an alert; a peer that closes during the handshake; only
1024-bit DHE; expired, wrong-name, self-signed and untrusted certificates;
a valid one): the client's reply, whether and how the message reached the
upstream, and the exact DCID log lines.  Then min_tls_version towards
next hops, fallback_plaintext,
destination entries (exact, .parent, default, a route's own level winning,
the names checked for MX delivery), null MX, the discarding of replies
injected after "220 Ready to start TLS", and required-TLS alerts."""

import re
import unittest

import peers
from peers import OutboundTestCase, RawUpstream, SMTPUpstream, destination, route
import tlsgate_test as tt

LEVELS = ("none", "preferred", "required", "preferred-verify", "required-verify")
BAD_CERTS = ("expired", "wrongname", "selfsigned", "untrusted")
BEHAVIOURS = ("plain", "refused", "hsfail", "hsclose", "dhe1024") + BAD_CERTS + ("valid",)

# Why OpenSSL refuses each certificate (X509_verify_cert_error_string) or,
# for the name, what the gateway checked: the route host only.
VERIFY_REASON = {
    "expired": r"certificate has expired",
    "wrongname": r"certificate name does not match localhost",
    "selfsigned": r"self[- ]signed certificate",
    "untrusted": (r"(?:self[- ]signed certificate in certificate chain|"
                  r"unable to get local issuer certificate)"),
}
OPENSSL_ERROR = r"\(\d+, 'error:[0-9A-F]+:[^']*'\)"  # ESA's "(code, 'error:...')"
HANDSHAKE_DETAIL = {
    "hsfail": OPENSSL_ERROR,
    "hsclose": r".+",
    "dhe1024": r"\(\d+, 'error:[0-9A-F]+:SSL routines:[^']*:dh key too small'\)",
}


def is_required(level):
    return level in ("required", "required-verify")


def is_verify(level):
    return level.endswith("-verify")


def outcome(level, behaviour):
    """What SPEC section 3 says happens: "clear" (delivered without TLS),
    "tls" (delivered over TLS), "474" or "475" (nothing sent, 451 4.7.x)."""
    if level == "none":
        return "clear"
    if behaviour in ("plain", "refused"):
        return "474" if is_required(level) else "clear"
    if behaviour in ("hsfail", "hsclose", "dhe1024"):
        return "475"
    if behaviour in BAD_CERTS and level == "required-verify":
        return "475"
    return "tls"


def domain_of(level, behaviour):
    return "%s.%s.test" % (behaviour, level)


class LevelMatrixTest(OutboundTestCase):
    """One gateway, one route per (level, behaviour): host localhost (the
    name the verify levels check), the upstream of that behaviour."""

    @classmethod
    def make_peers(cls):
        cls.add_peer("plain", SMTPUpstream(starttls=False))
        cls.add_peer("refused", SMTPUpstream(starttls_reply=peers.STARTTLS_TEMPFAIL))
        cls.add_peer("hsfail", RawUpstream(tls="fail"))
        cls.add_peer("hsclose", RawUpstream(tls="close"))
        cls.add_peer("dhe1024", SMTPUpstream(tls="dhe1024"))
        for name in BAD_CERTS:
            cls.add_peer(name, SMTPUpstream(cert=name))
        cls.add_peer("valid", SMTPUpstream(cert="good"))

    @classmethod
    def outbound_config(cls):
        return "".join(route("%s-%s" % (lv, b), domain_of(lv, b), cls.peers[b].port, tls=lv)
                       for lv in LEVELS for b in BEHAVIOURS)

    # --- one cell -------------------------------------------------------------
    def run_cell(self, level, behaviour):
        up = self.peers[behaviour]
        up.reset()
        dom = domain_of(level, behaviour)
        rcpt = "user@" + dom
        mark = self.mark()
        c, replies = self.transaction([rcpt])
        c.cmd("QUIT")
        c.close()
        want = outcome(level, behaviour)
        dcids = self.dcids(up.port, mark, timeout=tt.TIMEOUT)
        self.assertEqual(len(dcids), 1, "one delivery connection expected; log:\n%s"
                         % "\n".join(self.gw.log_texts(mark)))
        d = dcids[0]
        self.gw.wait_for_log(r"^DCID %d close$" % d, since=mark)
        block = self.block(d, dom, mark)
        self.check_reply(replies, want, level, behaviour, dom)
        self.check_upstream(up, want, level, behaviour, rcpt)
        self.check_log(block, d, want, level, behaviour, dom, up.port, mark)

    def block(self, d, dom, since):
        """The lines naming DCID d, and the Warning lines naming DOM."""
        pat = re.compile(r"\bDCID %d\b" % d)
        return [(lv, t) for lv, t in self.gw.log_lines()[since:]
                if pat.search(t) or (lv == "Warning" and dom in t)]

    def check_reply(self, replies, want, level, behaviour, dom):
        if want in ("clear", "tls"):
            self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
            # the upstream's own reply to the end of data
            self.assertRegex(replies[-1].last, r"^250 2\.0\.0 Ok: queued as (UP|RAW)\d{4}$")
            return
        self.assertEqual(len(replies), 2, replies)  # MAIL, then RCPT answered 451
        rcpt = replies[1]
        if want == "474":
            why = ("STARTTLS not offered" if behaviour == "plain"
                   else re.escape(peers.STARTTLS_TEMPFAIL))
            self.assertReply(rcpt, 451, re.compile(
                r"^451 4\.7\.4 Delivery to %s failed: TLS required but not offered \(%s\)$"
                % (re.escape(dom), why)))
        elif behaviour in BAD_CERTS:
            self.assertReply(rcpt, 451, re.compile(
                r"^451 4\.7\.5 Delivery to %s failed: certificate verification failed \(%s\)$"
                % (re.escape(dom), VERIFY_REASON[behaviour])))
        else:
            self.assertReply(rcpt, 451, re.compile(
                r"^451 4\.7\.5 Delivery to %s failed: TLS handshake failed \(%s\)$"
                % (re.escape(dom), HANDSHAKE_DETAIL[behaviour])))

    def check_upstream(self, up, want, level, behaviour, rcpt):
        # a refused attempt is over when the client has its 451: no wait
        msgs = up.wait_messages(1, timeout=0.1 if want in ("474", "475") else tt.TIMEOUT)
        verbs = up.verbs()
        if level == "none":
            self.assertNotIn("STARTTLS", [v for v, _ in verbs], "level none sent STARTTLS")
        if want in ("474", "475"):
            self.assertEqual(msgs, [], "a message was sent although the level was not met")
            self.assertNotIn("MAIL", [v for v, _ in verbs],
                             "MAIL sent although the level was not met: %r" % verbs)
            return
        self.assertEqual(len(msgs), 1, "delivered exactly once")
        self.assertEqual(msgs[0].rcpt_tos, [rcpt])
        self.assertEqual(msgs[0].mail_from, "sender@example.org")
        self.assertIn(b"Subject: test", msgs[0].content)
        self.assertEqual(msgs[0].tls, want == "tls", "delivered %s TLS" % (
            "without" if want == "tls" else "with"))
        if want == "tls":
            # STARTTLS, then EHLO again and the transaction inside TLS
            self.assertEqual(verbs[:4], [("EHLO", False), ("STARTTLS", False), ("EHLO", True),
                                         ("MAIL", True)], verbs)
        elif behaviour == "refused" and level != "none":
            self.assertEqual(verbs[:3], [("EHLO", False), ("STARTTLS", False),
                                         ("MAIL", False)], verbs)

    def check_log(self, block, d, want, level, behaviour, dom, port, since):
        new = ("Info", r"New SMTP DCID %d interface 127\.0\.0\.1 address 127\.0\.0\.1 port %d"
               % (d, port))
        close = ("Info", "DCID %d close" % d)
        success = ("Info", r"DCID %d TLS success protocol TLSv1\.[23] cipher [A-Z0-9_-]+" % d)
        peer = ("Info", r"DCID %d TLS peer certificate subject .*CN=\S+.* issuer .*CN=.+ "
                r"not after [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT" % d)
        required = [("Info", r"DCID %d IP 127\.0\.0\.1 TLS was required but could not be "
                     r"successfully negotiated" % d)]
        conn_error = ("Info", r"Connection Error: DCID %d domain: %s IP: 127\.0\.0\.1 port: %d "
                      r"details: .+ interface: 127\.0\.0\.1 reason: .+"
                      % (d, re.escape(dom), port))

        def warning(why):
            return ("Warning", r"TLS %s for %s could not be met by localhost \(127\.0\.0\.1\): %s"
                    % (level, re.escape(dom), why))

        if want in ("clear", "tls"):
            m = self.gw.wait_for_log(r"^Message done DCID %d MID (\d+) to RID \[0\]$" % d,
                                     since=since)
            mid = int(m.group(1))
            delivery = [("Info", r"Delivery start DCID %d MID %d to RID \[0\]" % (d, mid)),
                        ("Info", r"Message done DCID %d MID %d to RID \[0\]" % (d, mid)), close]
            self.assertIn(("Info", "MID %d RID [0] Response '2.0.0 Ok: queued as %s0001'"
                           % (mid, "RAW" if behaviour.startswith("hs") else "UP")),
                          self.gw.log_lines()[since:])
        if want == "clear":
            tls = []
            if behaviour == "refused" and level != "none":
                tls = [("Info", "DCID %d TLS failed: STARTTLS unexpected response" % d)]
            self.assertLogMatches(block, [new] + tls + delivery)
        elif want == "tls":
            verify = []
            if behaviour == "valid" and is_verify(level):
                verify = [("Info", "DCID %d TLS verify ok host localhost policy %s" % (d, level))]
            elif is_verify(level):
                verify = [("Info", "DCID %d TLS verify failed host localhost policy %s reason: %s"
                           % (d, level, VERIFY_REASON[behaviour]))]
            self.assertLogMatches(block, [new, success, peer] + verify + delivery)
        elif want == "474":
            if behaviour == "plain":
                failed, why = "STARTTLS not offered", "STARTTLS not offered"
            else:
                failed, why = "STARTTLS unexpected response", re.escape(peers.STARTTLS_TEMPFAIL)
            self.assertLogMatches(block, [new, ("Info", "DCID %d TLS failed: %s" % (d, failed))]
                                  + required + [warning(why), conn_error, close])
        elif behaviour in BAD_CERTS:
            reason = VERIFY_REASON[behaviour]
            self.assertLogMatches(block, [
                new, success, peer,
                ("Info", "DCID %d TLS verify failed host localhost policy %s reason: %s"
                 % (d, level, reason))] + required + [warning(reason), conn_error, close])
        else:
            detail = HANDSHAKE_DETAIL[behaviour]
            self.assertLogMatches(block, [new, ("Info", "DCID %d TLS failed: %s" % (d, detail))]
                                  + (required + [warning(detail)] if is_required(level) else [])
                                  + [conn_error, close])

    def run_level(self, level):
        for b in BEHAVIOURS:
            with self.subTest(level=level, upstream=b):
                self.run_cell(level, b)

    # --- the five levels -------------------------------------------------------
    def test_none(self):
        self.run_level("none")

    def test_preferred(self):
        self.run_level("preferred")

    def test_required(self):
        self.run_level("required")

    def test_preferred_verify(self):
        self.run_level("preferred-verify")

    def test_required_verify(self):
        self.run_level("required-verify")


class FallbackPlaintextTest(OutboundTestCase):
    """preferred + failed handshake: 451 4.7.5, or with fallback_plaintext
    = yes a new clear-text connection; never for required levels."""

    @classmethod
    def make_peers(cls):
        cls.add_peer("hsfail", RawUpstream(tls="fail"))
        cls.add_peer("hsclose", RawUpstream(tls="close"))

    @classmethod
    def outbound_config(cls):
        hs, cl = cls.peers["hsfail"].port, cls.peers["hsclose"].port
        return (route("fb", "fallback.test", hs) + destination("fallback.test", "preferred",
                                                               fallback_plaintext="yes")
                + route("fbclose", "fallbackclose.test", cl)
                + destination("fallbackclose.test", "preferred", fallback_plaintext="yes")
                + route("nofb", "nofallback.test", hs) + destination("nofallback.test",
                                                                     "preferred")
                + route("reqfb", "requiredfallback.test", hs)
                + destination("requiredfallback.test", "required", fallback_plaintext="yes"))

    def fallback(self, up, dom):
        mark = self.mark()
        c, replies = self.transaction(["user@" + dom])
        self.assertReply(replies[-1], 250, re.compile(r"^250 2\.0\.0 Ok: queued as RAW0001$"))
        c.cmd("QUIT")
        msgs = up.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertFalse(msgs[0].tls)
        self.assertEqual(up.connections, 2, "a second connection for the clear-text attempt")
        self.assertEqual([v for v, _ in up.verbs(1)], ["EHLO", "STARTTLS"])
        self.assertEqual([v for v, _ in up.verbs(2)][:2], ["EHLO", "MAIL"],
                         "the retry must not try STARTTLS again")
        d1, d2 = self.dcids(up.port, mark, timeout=tt.TIMEOUT)[:2]
        first = self.dcid_log(d1, mark)
        self.assertRegex(first[1][1], r"^DCID %d TLS failed: " % d1)
        self.assertTrue(any(t.startswith("Connection Error: DCID %d " % d1) for _, t in first))
        second = self.dcid_log(d2, mark)
        self.assertFalse(any("TLS" in t for _, t in second), second)
        self.assertTrue(any(t.startswith("Message done DCID %d " % d2) for _, t in second))

    def test_fallback_after_failed_handshake(self):
        self.fallback(self.peers["hsfail"], "fallback.test")

    def test_fallback_after_peer_closed_in_handshake(self):
        # A next hop that drops the connection in the middle of the
        # handshake is a handshake failure too, not a connection failure.
        self.fallback(self.peers["hsclose"], "fallbackclose.test")

    def test_no_fallback_without_the_option(self):
        up = self.peers["hsfail"]
        c, replies = self.transaction(["user@nofallback.test"])
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.7\.5 Delivery to nofallback\.test failed: TLS handshake failed "))
        self.assertEqual(up.wait_messages(1, timeout=0.5), [])
        self.assertEqual(up.connections, 1)

    def test_no_fallback_for_required(self):
        up = self.peers["hsfail"]
        c, replies = self.transaction(["user@requiredfallback.test"])
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.7\.5 Delivery to requiredfallback\.test failed: TLS handshake failed "))
        self.assertEqual(up.wait_messages(1, timeout=0.5), [])
        self.assertEqual(up.connections, 1, "no clear-text retry at a required level")


class MinimumVersionTest(OutboundTestCase):
    """min_tls_version holds towards next hops too."""

    gateway_config = {"min_tls_version": "TLSv1.3"}

    @classmethod
    def make_peers(cls):
        cls.add_peer("tls12", RawUpstream(tls="tls12"))

    @classmethod
    def outbound_config(cls):
        p = cls.peers["tls12"].port
        return (route("req", "required.example", p, tls="required")
                + route("pref", "preferred.example", p, tls="preferred"))

    def test_below_minimum_refused(self):
        up = self.peers["tls12"]
        for dom in ("required.example", "preferred.example"):
            with self.subTest(domain=dom):
                mark = self.mark()
                c, replies = self.transaction(["user@" + dom])
                c.cmd("QUIT")
                self.assertReply(replies[-1], 451, re.compile(
                    r"^451 4\.7\.5 Delivery to %s failed: TLS handshake failed \(%s\)$"
                    % (re.escape(dom), OPENSSL_ERROR)))
                d = self.dcids(up.port, mark)[0]
                self.gw.wait_for_log(r"^DCID %d TLS failed: %s$" % (d, OPENSSL_ERROR), since=mark)
        self.assertEqual(up.messages, [])


MX_HOSTS = """\
# TLSGATE_HOSTS_MX for DestinationTest
example.net 10 mx.example.test
sub.example.net 10 mx.sub.example.net
mx.sub.example.net A 127.0.0.1
mx.example.test A 127.0.0.1
wrongmx.example 10 mx.wrongmx.example
mx.wrongmx.example A 127.0.0.1
mx.example.test 10 mx9.elsewhere.example
mx9.elsewhere.example A 127.0.0.1
nullmx.example 0 .
"""


class DestinationTest(OutboundTestCase):
    """Destination entries for MX delivery (exact, .parent, default), the
    names checked there (MX host, then recipient domain), a route's own
    level winning over the destination, and null MX."""

    mx_peer = "good"
    mx_hosts = MX_HOSTS

    @classmethod
    def make_peers(cls):
        cls.add_peer("good", SMTPUpstream(cert="good"))
        cls.add_peer("plain", SMTPUpstream(starttls=False))

    @classmethod
    def outbound_config(cls):
        good, plain = cls.peers["good"].port, cls.peers["plain"].port
        return (destination("default", "required-verify")
                + destination("example.net", "required-verify")
                + destination(".example.net", "preferred-verify")
                + destination("example.org", "required-verify")
                + destination("example.com", "required-verify")
                + destination("plain.example", "required")
                # the route's own level wins over [destination:example.org]
                + route("clear", "example.org", good, tls="none")
                # no tls on the route: [destination:example.com] applies
                + route("dest", "example.com", good)
                + route("plainroute", "plain.example", plain))

    def deliver(self, rcpt):
        mark = self.mark()
        c, replies = self.transaction([rcpt])
        c.cmd("QUIT")
        return mark, replies

    def dcid_lines(self, mark, port=None):
        d = self.dcids(port or self.peers["good"].port, mark, timeout=tt.TIMEOUT)[0]
        return [t for _, t in self.dcid_log(d, mark)], d

    def test_exact_entry_verifies_mx_host(self):
        mark, replies = self.deliver("user@example.net")
        self.assertReply(replies[-1], 250)
        lines, d = self.dcid_lines(mark)
        self.assertIn("DCID %d TLS verify ok host mx.example.test policy required-verify" % d,
                      lines)
        msgs = self.peers["good"].wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].tls)

    def test_parent_entry(self):
        # .example.net: preferred-verify; the certificate names neither
        # mx.sub.example.net nor sub.example.net: delivered, logged failed
        mark, replies = self.deliver("user@sub.example.net")
        self.assertReply(replies[-1], 250)
        lines, d = self.dcid_lines(mark)
        self.assertIn("DCID %d TLS verify failed host mx.sub.example.net policy preferred-verify "
                      "reason: certificate name does not match mx.sub.example.net or "
                      "sub.example.net" % d, lines)
        self.assertTrue(self.peers["good"].wait_messages(1)[0].tls)

    def test_default_entry(self):
        mark, replies = self.deliver("user@wrongmx.example")
        self.assertReply(replies[-1], 451, re.compile(
            r"^451 4\.7\.5 Delivery to wrongmx\.example failed: certificate verification "
            r"failed \(certificate name does not match mx\.wrongmx\.example or "
            r"wrongmx\.example\)$"))
        lines, d = self.dcid_lines(mark)
        self.assertIn("DCID %d TLS verify failed host mx.wrongmx.example policy required-verify "
                      "reason: certificate name does not match mx.wrongmx.example or "
                      "wrongmx.example" % d, lines)
        self.assertEqual(self.peers["good"].wait_messages(1, timeout=0.5), [])

    def test_recipient_domain_matches(self):
        # MX host not in the certificate, the recipient domain is
        mark, replies = self.deliver("user@mx.example.test")
        self.assertReply(replies[-1], 250)
        lines, d = self.dcid_lines(mark)
        self.assertIn("DCID %d TLS verify ok host mx.example.test policy required-verify" % d,
                      lines)

    def test_route_level_wins(self):
        mark, replies = self.deliver("user@example.org")
        self.assertReply(replies[-1], 250)
        msgs = self.peers["good"].wait_messages(1)
        self.assertFalse(msgs[0].tls, "route tls = none must win over the destination")
        self.assertNotIn("STARTTLS", [v for v, _ in self.peers["good"].verbs()])

    def test_route_without_level_uses_destination(self):
        mark, replies = self.deliver("user@example.com")
        self.assertReply(replies[-1], 250)
        lines, d = self.dcid_lines(mark)
        self.assertIn("DCID %d TLS verify ok host localhost policy required-verify" % d, lines)
        mark, replies = self.deliver("user@plain.example")
        self.assertReply(replies[-1], 451, re.compile(r"^451 4\.7\.4 Delivery to plain\.example "))
        self.assertEqual(self.peers["plain"].wait_messages(1, timeout=0.5), [])

    def test_null_mx(self):
        mark = self.mark()
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<sender@example.org>"), 250)
        r = c.cmd("RCPT TO:<user@nullmx.example>")
        self.assertReply(r, 556, re.compile(r"^556 5\.1\.10 "))
        self.assertIn("nullmx.example", r.last)
        self.assertEqual(self.dcids(self.peers["good"].port, mark), [])
        c.cmd("QUIT")


class ResponseInjectionTest(OutboundTestCase):
    """Bytes the next hop sends in clear after "220 Ready to start TLS" are
    discarded: EHLO is sent again inside TLS and its real reply waited
    for."""

    @classmethod
    def make_peers(cls):
        cls.add_peer("cont", RawUpstream(inject=b"250-injected\r\n", probe=0.5))
        cls.add_peer("full", RawUpstream(inject=b"250 injected\r\n", probe=0.5))
        cls.add_peer("many", RawUpstream(
            inject=b"250 injected\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n",
            probe=0.5))

    @classmethod
    def outbound_config(cls):
        return "".join(route(n, "%s.example.org" % n, p.port, tls="required-verify")
                       for n, p in cls.peers.items())

    def check(self, name):
        up = self.peers[name]
        c, replies = self.transaction(["user@%s.example.org" % name])
        self.assertReply(replies[-1], 250, re.compile(r"^250 2\.0\.0 Ok: queued as RAW0001$"))
        c.cmd("QUIT")
        msgs = up.wait_messages(1)
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].tls)
        verbs = up.verbs(1)
        self.assertEqual(verbs[:4], [("EHLO", False), ("STARTTLS", False), ("EHLO", True),
                                     ("MAIL", True)], verbs)
        self.assertNotIn((1, "early after EHLO"), up.events,
                         "the gateway sent a command before the real EHLO reply inside TLS: "
                         "it acted on the injected bytes")

    def test_injected_continuation_line(self):
        self.check("cont")

    def test_injected_reply(self):
        self.check("full")

    def test_injected_replies_for_a_whole_transaction(self):
        self.check("many")


class AlertTest(OutboundTestCase):
    """A required-level failure always writes a Warning naming the
    destination; with [alerts] one alert per destination per interval goes
    through the alert route (here the Maildir route "local")."""

    @classmethod
    def make_peers(cls):
        cls.add_peer("plain", SMTPUpstream(starttls=False))

    @classmethod
    def outbound_config(cls):
        p = cls.peers["plain"].port
        return (route("a", "alert-a.test", p, tls="required")
                + route("b", "alert-b.test", p, tls="required-verify")
                + tt.ini_section("alerts", {"recipients": "postmaster@example.test, "
                                            "tls-admin@example.test", "route": "local"}))

    def fail(self, dom):
        c, replies = self.transaction(["user@" + dom])
        self.assertReply(replies[-1], 451, re.compile(r"^451 4\.7\.4 Delivery to %s failed: "
                                                      % re.escape(dom)))
        c.cmd("QUIT")

    def test_alerts_rate_limited_per_destination(self):
        mark = self.mark()
        self.fail("alert-a.test")
        msgs = self.gw.wait_messages(1)
        self.assertEqual(len(msgs), 1, "one alert")
        self.assertIn(b"alert-a.test", msgs[0])
        self.assertRegex(msgs[0], rb"(?m)^To: .*postmaster@example\.test")
        self.assertRegex(msgs[0], rb"(?m)^To: .*tls-admin@example\.test")
        self.gw.wait_for_log(r"^alert about alert-a\.test sent to 2 recipients through route "
                             r"local$", since=mark)
        self.fail("alert-a.test")
        self.fail("alert-b.test")
        msgs = self.gw.wait_messages(2)
        self.gw.wait_for_log(r"^alert about alert-b\.test sent ", since=mark)
        msgs = self.gw.maildir_messages()
        self.assertEqual(len(msgs), 2, "a second failure for alert-a.test within the interval "
                         "must not alert again")
        self.assertIn(b"alert-b.test", msgs[1])
        warnings = [t for lv, t in self.gw.log_lines()[mark:] if lv == "Warning"]
        self.assertEqual(len([w for w in warnings if "for alert-a.test could not be met" in w]),
                         2, warnings)
        self.assertEqual(len([w for w in warnings if "for alert-b.test could not be met" in w]),
                         1, warnings)


if __name__ == "__main__":
    unittest.main()
