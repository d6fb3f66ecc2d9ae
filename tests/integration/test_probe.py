"""tlsgate probe (issue 5 item 6): the CheckTLS-style test of a destination.

Targets, all on loopback:
  * tlsgate listeners started with the harness, one per test-CA certificate
    (good, expired, wrongname, selfsigned, untrusted), one with tls = off
    ("STARTTLS not offered") and one with implicit_tls (for --implicit);
    three more share one port on 127.0.0.2/3/4 so that a domain can have
    several MX hosts through the TLSGATE_HOSTS_MX test hook;
  * small stdlib SMTP servers in threads (MiniSMTP) for what the gateway
    cannot be: only 1024-bit DHE (dh key too small), bytes injected after
    the 220 to STARTTLS, a server that never greets;
  * a private Postfix instance (peers.PostfixUpstream) with one smtpd per
    test-CA certificate, skipped with the reason when Postfix, root or the
    peers module is not available.

Every run is checked for sanitizer reports on standard error; the JSON
report's fields, the verdicts of the five levels and the exit status for
--policy are asserted.  Standard library only (peers needs aiosmtpd).
"""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import peers
import tlsgate_test as tt

LEVELS = ("none", "preferred", "required", "preferred-verify", "required-verify")
DOMAIN = "probe.example.test"


def run_probe(*args, env=None, cwd=None, timeout=60):
    """`tlsgate probe ARGS...`; the CompletedProcess.  Fails on a sanitizer
    report."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run([tt.BIN, "probe"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, env=full_env, cwd=cwd or tempfile.gettempdir(),
                       stdin=subprocess.DEVNULL)
    for mark in tt.SANITIZER_MARKS:
        if mark in r.stderr:
            raise AssertionError("sanitizer report from tlsgate probe:\n" + r.stderr)
    return r


def probe_json(*args, **kw):
    """(exit status, the JSON report) of `tlsgate probe --json ARGS`."""
    r = run_probe("--json", *args, **kw)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError("not JSON (exit %d):\n%s\nstderr:\n%s"
                             % (r.returncode, r.stdout, r.stderr))


def dhe1024_context():
    """A server context with only DHE-RSA-AES128-GCM-SHA256 over a 1024-bit
    group, TLS 1.2 at most, on the test CA's RSA certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0")
    ctx.load_dh_params(peers.dh1024_params())
    d = os.path.join(tt.test_certs(), "good-rsa")
    ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    return ctx


def good_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    d = os.path.join(tt.test_certs(), "good")
    ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    return ctx


class MiniSMTP(peers.ThreadedServer):
    """A minimal ESMTP server (peers.ThreadedServer): greeting, EHLO
    (STARTTLS advertised when CONTEXT is set), STARTTLS with CONTEXT (INJECT
    is sent in the same write as its 220), QUIT.  GREET False: accepts and
    says nothing.  EVENTS records handshake results."""

    def __init__(self, context=None, inject=b"", greet=True, name="mini.example.test"):
        self.context = context
        self.inject = inject
        self.greet = greet
        self.name = name
        self.events = []
        self._listen(backlog=8)

    def _serve(self, sock):
        try:
            self._session(sock)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            self.events.append("ended: %s" % e.__class__.__name__)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _lines(self, sock):
        buf = b""
        sock.settimeout(tt.TIMEOUT)
        while not self._stop.is_set():
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.rstrip(b"\r").decode("utf-8", "replace")
            data = sock.recv(4096)
            if not data:
                return
            buf += data

    def _session(self, sock):
        if not self.greet:
            self._stop.wait(tt.TIMEOUT)
            return
        sock.sendall(b"220 %s ESMTP mini\r\n" % self.name.encode())
        tls = False
        for line in self._lines(sock):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                ext = [self.name, "PIPELINING"]
                if self.context is not None and not tls:
                    ext.append("STARTTLS")
                sock.sendall("".join("250%s%s\r\n" % ("-" if i < len(ext) - 1 else " ", e)
                                     for i, e in enumerate(ext)).encode())
            elif verb == "STARTTLS" and self.context is not None and not tls:
                sock.sendall(b"220 2.0.0 Ready to start TLS\r\n" + self.inject)
                try:
                    sock = self.context.wrap_socket(sock, server_side=True)
                except ssl.SSLError as e:
                    self.events.append("handshake failed: %s" % e.reason)
                    return
                self.events.append("handshake ok")
                self._conns.append(sock)
                tls = True
                return self._after_tls(sock)
            elif verb == "QUIT":
                sock.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                sock.sendall(b"502 5.5.2 Command not recognized\r\n")

    def _after_tls(self, sock):
        for line in self._lines(sock):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                sock.sendall(b"250-%s\r\n250 PIPELINING\r\n" % self.name.encode())
            elif verb == "QUIT":
                sock.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                sock.sendall(b"502 5.5.2 Command not recognized\r\n")


class ProbeAssertions:
    """Checks on a probe report shared by the test classes."""

    def target(self, report, index=0):
        self.assertGreater(len(report["targets"]), index, json.dumps(report, indent=1))
        return report["targets"][index]

    def assertVerdicts(self, target, expected):
        """EXPECTED: {level: (deliver, reason)} for every level."""
        got = {lv: (target["verdicts"][lv]["deliver"], target["verdicts"][lv]["reason"])
               for lv in LEVELS}
        self.assertEqual(got, expected, json.dumps(target["verdicts"], indent=1))

    def assertPolicyExit(self, args, delivering, **kw):
        """The exit status of each --policy LEVEL: 0 for DELIVERING levels,
        1 for the others."""
        for lv in LEVELS:
            r = run_probe("--policy", lv, *args, **kw)
            self.assertEqual(r.returncode, 0 if lv in delivering else 1,
                             "--policy %s\n%s%s" % (lv, r.stdout, r.stderr))

    def assertTLS(self, target):
        tls = target["tls"]
        self.assertIsNotNone(tls)
        self.assertTrue(tls["ok"], tls)
        self.assertIn(tls["protocol"], ("TLSv1.2", "TLSv1.3"))
        self.assertTrue(tls["cipher"])
        self.assertGreaterEqual(tls["cipher_bits"], 128)
        self.assertGreaterEqual(tls["ms"], 0)
        self.assertIsNone(tls["error"])
        return tls


# ---------------------------------------------------------------------------
# Against tlsgate listeners.

SHARED_PORT = tt.free_port("127.0.0.2")
MX_HOSTS = """\
# the domain has two MX hosts: the wrong-name one first, the good one next
%(domain)s 10 bad.example.test
%(domain)s 20 mx.example.test
bad.example.test A 127.0.0.3
mx.example.test A 127.0.0.2
# one MX host only, with the wrong name
wrong.example.test 10 bad.example.test
# no STARTTLS at all
clear.example.test 10 clear-mx.example.test
clear-mx.example.test A 127.0.0.4
# the implicit MX: no MX record, the domain's own address
implicit.example.test A 127.0.0.2
# host names for host mode (the hook replaces /etc/hosts too)
localhost A 127.0.0.1
gw-host.example.test A 127.0.0.1
# RFC 7505 null MX
nullmx.example.test 0 .
""" % {"domain": DOMAIN}


class ProbeGatewayTest(ProbeAssertions, tt.GatewayTestCase):
    share_gateway = True
    listener_config = {
        "good": {"certificate": "good"},
        "expired": {"certificate": "expired"},
        "wrongname": {"certificate": "wrongname"},
        "selfsigned": {"certificate": "selfsigned"},
        "untrusted": {"certificate": "untrusted"},
        "notls": {"tls": "off"},
        "smtps": {"implicit_tls": "yes", "certificate": "good"},
        "smtps_wrong": {"implicit_tls": "yes", "certificate": "wrongname"},
        "mx_good": {"address": "127.0.0.2:%d" % SHARED_PORT, "certificate": "good"},
        "mx_wrong": {"address": "127.0.0.3:%d" % SHARED_PORT, "certificate": "wrongname"},
        "mx_clear": {"address": "127.0.0.4:%d" % SHARED_PORT, "tls": "off"},
    }
    if tt.ipv6_loopback():
        listener_config["v6"] = {"address": "[::1]:{port}", "certificate": "good"}
    extra_config = "[destination:%s]\ntls = required\n" % DOMAIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hosts_dir = tempfile.mkdtemp(prefix="tlsgate-probe-")
        cls.hosts_mx = os.path.join(cls.hosts_dir, "hosts_mx")
        with open(cls.hosts_mx, "w") as f:
            f.write(MX_HOSTS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.hosts_dir, ignore_errors=True)
        super().tearDownClass()

    def env(self):
        return {"TLSGATE_HOSTS_MX": self.hosts_mx}

    def trust(self):
        return ["--trust", tt.ca_file()]

    def host(self, listener, name="localhost"):
        return "%s:%d" % (name, self.gw.ports[listener])

    def probe(self, *args, **kw):
        kw.setdefault("env", self.env())
        return probe_json(*args, **kw)

    # --- certificates --------------------------------------------------------
    def test_good_certificate(self):
        rc, rep = self.probe(self.host("good"), *self.trust())
        self.assertEqual(rc, 0, rep)
        self.assertEqual(rep["mode"], "host")
        self.assertEqual(rep["tls_mode"], "starttls")
        self.assertEqual(rep["policy"], "required-verify")
        self.assertEqual(rep["lookup"], {"status": "ok", "error": None})
        t = self.target(rep)
        self.assertEqual((t["host"], t["address"], t["port"]),
                         ("localhost", "127.0.0.1", self.gw.ports["good"]))
        self.assertIsNone(t["preference"])
        self.assertEqual(t["sni"], "localhost")
        self.assertEqual(t["reference_names"], ["localhost"])
        self.assertIsNone(t["failed_step"])
        self.assertTrue(t["connect"]["ok"])
        self.assertGreaterEqual(t["connect"]["ms"], 0)
        self.assertEqual(t["greeting"]["code"], 220)
        self.assertRegex(t["greeting"]["text"], r"^220 %s " % tt.HOSTNAME)
        self.assertEqual(t["ehlo"]["command"], "EHLO")
        self.assertEqual(t["ehlo"]["code"], 250)
        self.assertIn("STARTTLS", t["ehlo"]["extensions"])
        self.assertIn("PIPELINING", t["ehlo"]["extensions"])
        self.assertTrue(t["starttls_offered"])
        self.assertEqual(t["starttls"]["code"], 220)
        self.assertFalse(t["starttls"]["data_after_220"])
        tls = self.assertTLS(t)
        self.assertEqual(tls["temp_key"]["kind"], "ECDH")
        self.assertGreaterEqual(tls["temp_key"]["bits"], 253)
        chain = tls["chain"]
        self.assertEqual(len(chain), 2)
        self.assertEqual(chain[0]["subject"], "CN=mx.example.test,O=tlsgate tests")
        self.assertEqual(chain[0]["issuer"], "CN=tlsgate Test Intermediate CA,O=tlsgate tests")
        self.assertEqual(chain[1]["subject"], "CN=tlsgate Test Intermediate CA,O=tlsgate tests")
        self.assertEqual(chain[1]["issuer"], "CN=tlsgate Test Root CA,O=tlsgate tests")
        self.assertIn("DNS:localhost", chain[0]["san"])
        self.assertIn("IP:127.0.0.1", chain[0]["san"])
        self.assertEqual(chain[0]["key"], "EC P-256 256 bits")
        self.assertFalse(chain[0]["expired"])
        self.assertGreater(chain[0]["days_left"], 700)
        self.assertRegex(chain[0]["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(tls["chain_verify"], {"ok": True, "result": "ok", "reason": None})
        self.assertEqual(tls["name_verify"], {"ok": True, "matched": "localhost",
                                              "checked": ["localhost"], "reason": None})
        self.assertEqual(tls["ehlo"]["code"], 250)
        self.assertNotIn("STARTTLS", tls["ehlo"]["extensions"])
        self.assertIsNone(t["permissive"])
        self.assertEqual(t["flags"], [])
        self.assertVerdicts(t, {lv: (True, None) for lv in LEVELS})
        self.assertFalse(t["verdicts"]["none"]["encrypted"])
        self.assertTrue(t["verdicts"]["preferred"]["encrypted"])
        self.assertFalse(t["verdicts"]["required"]["verified"])
        self.assertTrue(t["verdicts"]["required-verify"]["verified"])
        self.assertEqual(rep["result"]["deliver"], True)
        self.assertEqual(rep["result"]["via"], {"host": "localhost", "address": "127.0.0.1",
                                                "port": self.gw.ports["good"]})
        self.assertEqual(rep["exit"], 0)

    def test_expired_certificate(self):
        rc, rep = self.probe(self.host("expired"), *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        tls = self.assertTLS(t)
        self.assertTrue(tls["chain"][0]["expired"])
        self.assertLess(tls["chain"][0]["days_left"], 0)
        self.assertEqual(tls["chain"][0]["not_after"], "2021-01-01T00:00:00Z")
        self.assertEqual(tls["chain_verify"]["result"], "expired")
        self.assertEqual(tls["chain_verify"]["reason"], "certificate has expired")
        self.assertTrue(tls["name_verify"]["ok"])
        self.assertIn("certificate-expired", t["flags"])
        self.assertVerdicts(t, {"none": (True, None), "preferred": (True, None),
                                "required": (True, None),
                                "preferred-verify": (True, "certificate-expired"),
                                "required-verify": (False, "certificate-expired")})
        self.assertEqual(t["verdicts"]["required-verify"]["text"],
                         "would NOT deliver: certificate has expired")
        self.assertEqual(t["verdicts"]["preferred-verify"]["text"],
                         "would deliver encrypted (verification failed: certificate has expired)")
        self.assertPolicyExit([self.host("expired")] + self.trust(),
                              ("none", "preferred", "required", "preferred-verify"))

    def test_wrong_name(self):
        rc, rep = self.probe(self.host("wrongname"), *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        tls = self.assertTLS(t)
        self.assertEqual(tls["chain"][0]["san"], ["DNS:wrong.example.net"])
        self.assertEqual(tls["chain_verify"]["result"], "ok")
        self.assertEqual(tls["name_verify"]["ok"], False)
        self.assertIsNone(tls["name_verify"]["matched"])
        self.assertEqual(tls["name_verify"]["reason"],
                         "certificate name does not match localhost")
        self.assertVerdicts(t, {"none": (True, None), "preferred": (True, None),
                                "required": (True, None),
                                "preferred-verify": (True, "certificate-host-mismatch"),
                                "required-verify": (False, "certificate-host-mismatch")})
        self.assertEqual(t["verdicts"]["required-verify"]["text"],
                         "would NOT deliver: certificate name does not match localhost")

    def test_wrong_name_matches_with_name(self):
        rc, rep = self.probe(self.host("wrongname"), "--name", "wrong.example.net",
                             *self.trust())
        self.assertEqual(rc, 0, rep["result"])
        t = self.target(rep)
        self.assertEqual(t["sni"], "wrong.example.net")
        self.assertEqual(t["tls"]["name_verify"]["matched"], "wrong.example.net")

    def test_self_signed(self):
        rc, rep = self.probe(self.host("selfsigned"), *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        tls = self.assertTLS(t)
        self.assertEqual(len(tls["chain"]), 1)
        self.assertTrue(tls["chain"][0]["self_signed"])
        self.assertEqual(tls["chain_verify"]["result"], "untrusted")
        self.assertEqual(tls["chain_verify"]["reason"], "self-signed certificate")
        # the self-signed certificate names mx.example.test only
        self.assertFalse(tls["name_verify"]["ok"])
        self.assertVerdicts(t, {"none": (True, None), "preferred": (True, None),
                                "required": (True, None),
                                "preferred-verify": (True, "certificate-not-trusted"),
                                "required-verify": (False, "certificate-not-trusted")})
        self.assertEqual(t["verdicts"]["required-verify"]["text"],
                         "would NOT deliver: self-signed certificate; "
                         "certificate name does not match localhost")

    def test_untrusted_issuer(self):
        rc, rep = self.probe(self.host("untrusted"), *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        tls = self.assertTLS(t)
        self.assertEqual(tls["chain"][0]["issuer"], "CN=tlsgate Other Root CA,O=tlsgate tests")
        self.assertEqual(tls["chain_verify"]["result"], "untrusted")
        self.assertTrue(tls["name_verify"]["ok"])
        self.assertEqual(t["verdicts"]["required-verify"]["reason"], "certificate-not-trusted")

    def test_trust_store_decides(self):
        """The good chain is untrusted against another anchor (--trust) and
        trusted through the store of --certs-dir and of -c CONFIG."""
        other = os.path.join(tt.test_certs(), "other-ca.pem")
        rc, rep = self.probe(self.host("good"), "--trust", other)
        self.assertEqual(rc, 1)
        self.assertEqual(rep["trust"], other + " (only)")
        self.assertEqual(self.target(rep)["tls"]["chain_verify"]["result"], "untrusted")
        rc, rep = self.probe(self.host("good"), "--certs-dir", self.gw.certs_dir)
        self.assertEqual(rc, 0, rep["result"])
        self.assertEqual(rep["trust"], self.gw.certs_dir + "/trust + system store")
        rc, rep = self.probe(self.host("good"), "-c", self.gw.config_path)
        self.assertEqual(rc, 0, rep["result"])
        self.assertEqual(rep["ehlo"], tt.GW_HOSTNAME)

    # --- STARTTLS and implicit TLS ------------------------------------------
    def test_starttls_not_offered(self):
        rc, rep = self.probe(self.host("notls"), *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertFalse(t["starttls_offered"])
        self.assertNotIn("STARTTLS", t["ehlo"]["extensions"])
        self.assertIsNone(t["starttls"])
        self.assertIsNone(t["tls"])
        self.assertIsNone(t["failed_step"])
        self.assertVerdicts(t, {"none": (True, None), "preferred": (True, None),
                                "required": (False, "starttls-not-supported"),
                                "preferred-verify": (True, None),
                                "required-verify": (False, "starttls-not-supported")})
        self.assertEqual(t["verdicts"]["preferred"]["text"],
                         "would deliver in clear (STARTTLS not offered)")
        self.assertEqual(t["verdicts"]["required"]["text"],
                         "would NOT deliver: STARTTLS not offered")
        self.assertFalse(t["verdicts"]["preferred"]["encrypted"])
        self.assertPolicyExit([self.host("notls")] + self.trust(),
                              ("none", "preferred", "preferred-verify"))

    def test_implicit_tls(self):
        rc, rep = self.probe(self.host("smtps"), "--implicit", *self.trust())
        self.assertEqual(rc, 0, rep["result"])
        self.assertEqual(rep["tls_mode"], "implicit")
        t = self.target(rep)
        tls = self.assertTLS(t)
        self.assertEqual(t["greeting"]["code"], 220)
        self.assertEqual(t["ehlo"]["code"], 250)
        self.assertNotIn("STARTTLS", t["ehlo"]["extensions"])
        self.assertIsNone(t["starttls"])
        self.assertTrue(tls["name_verify"]["ok"])
        self.assertVerdicts(t, {lv: (True, None) for lv in LEVELS})
        self.assertTrue(t["verdicts"]["none"]["encrypted"])

    def test_implicit_tls_wrong_name(self):
        args = [self.host("smtps_wrong"), "--implicit"] + self.trust()
        rc, rep = self.probe(*args)
        self.assertEqual(rc, 1)
        self.assertEqual(self.target(rep)["verdicts"]["required-verify"]["reason"],
                         "certificate-host-mismatch")
        self.assertPolicyExit(args, ("none", "preferred", "required", "preferred-verify"),
                              env=self.env())

    def test_implicit_against_starttls_listener(self):
        """--implicit against a plain-text greeting: the handshake fails,
        and no level can deliver."""
        rc, rep = self.probe(self.host("good"), "--implicit", "--no-retry", "--timeout", "5",
                             *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertEqual(t["failed_step"], "tls")
        self.assertFalse(t["tls"]["ok"])
        self.assertIsNone(t["permissive"])
        for lv in LEVELS:
            self.assertFalse(t["verdicts"][lv]["deliver"], lv)
            self.assertEqual(t["verdicts"][lv]["reason"], "handshake-failed")

    def test_ipv6_address(self):
        """[::1]:PORT is a host; an address is never sent as SNI and, as in
        the gateway, never matches a DNS-ID; --name gives the name."""
        if "v6" not in self.gw.ports:
            self.skipTest("no IPv6 loopback")
        target = "[::1]:%d" % self.gw.ports["v6"]
        rc, rep = self.probe(target, *self.trust())
        self.assertEqual(rc, 1)
        self.assertEqual(rep["query"], "::1")
        t = self.target(rep)
        self.assertEqual(t["address"], "::1")
        self.assertIsNone(t["sni"])
        self.assertEqual(t["reference_names"], ["::1"])
        self.assertTrue(t["tls"]["chain_verify"]["ok"])
        self.assertEqual(t["verdicts"]["required-verify"]["reason"], "certificate-host-mismatch")
        rc, rep = self.probe(target, "--name", "mx.example.test", *self.trust())
        self.assertEqual(rc, 0, rep["result"])
        self.assertEqual(self.target(rep)["sni"], "mx.example.test")

    # --- MX mode -------------------------------------------------------------
    def test_mx_lookup_two_hosts(self):
        rc, rep = self.probe(DOMAIN, "--port", SHARED_PORT, *self.trust())
        self.assertEqual(rc, 0, rep["result"])
        self.assertEqual(rep["mode"], "mx")
        self.assertEqual(rep["query"], DOMAIN)
        self.assertEqual(rep["port"], SHARED_PORT)
        hosts = [(t["preference"], t["host"], t["address"]) for t in rep["targets"]]
        self.assertEqual(hosts, [(10, "bad.example.test", "127.0.0.3"),
                                 (20, "mx.example.test", "127.0.0.2")])
        bad, good = rep["targets"]
        self.assertEqual(bad["reference_names"], ["bad.example.test", DOMAIN])
        self.assertEqual(bad["sni"], "bad.example.test")
        self.assertEqual(bad["tls"]["name_verify"]["reason"],
                         "certificate name does not match bad.example.test or " + DOMAIN)
        self.assertFalse(bad["verdicts"]["required-verify"]["deliver"])
        self.assertEqual(good["tls"]["name_verify"]["matched"], "mx.example.test")
        self.assertEqual(good["tls"]["name_verify"]["checked"], ["mx.example.test", DOMAIN])
        self.assertTrue(good["verdicts"]["required-verify"]["verified"])
        # the gateway moves on to the next MX after a failure: one is enough
        self.assertEqual(rep["result"]["via"],
                         {"host": "mx.example.test", "address": "127.0.0.2", "port": SHARED_PORT})

    def test_mx_single_wrong_host(self):
        args = ["wrong.example.test", "--port", SHARED_PORT] + self.trust()
        rc, rep = self.probe(*args)
        self.assertEqual(rc, 1)
        self.assertFalse(rep["result"]["deliver"])
        self.assertIsNone(rep["result"]["via"])
        self.assertRegex(rep["result"]["text"], r"^required-verify would NOT deliver to "
                         r"wrong\.example\.test .*certificate name does not match")
        self.assertPolicyExit(args, ("none", "preferred", "required", "preferred-verify"),
                              env=self.env())

    def test_mx_without_starttls(self):
        rc, rep = self.probe("clear.example.test", "--port", SHARED_PORT, "--policy",
                             "required", *self.trust())
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertEqual(t["host"], "clear-mx.example.test")
        self.assertEqual(t["verdicts"]["required"]["reason"], "starttls-not-supported")

    def test_mx_implicit_mx(self):
        rc, rep = self.probe("implicit.example.test", "--port", SHARED_PORT, *self.trust())
        t = self.target(rep)
        self.assertTrue(t["implicit_mx"])
        self.assertEqual(t["host"], "implicit.example.test")
        self.assertEqual(t["reference_names"], ["implicit.example.test"])
        self.assertEqual(rc, 1)  # the good certificate does not name it
        self.assertEqual(t["verdicts"]["required"]["deliver"], True)

    def test_mx_lookup_failures(self):
        for domain, status in (("nowhere.example.test", "nxdomain"),
                               ("nullmx.example.test", "null-mx")):
            rc, rep = self.probe(domain, "--port", SHARED_PORT, "--policy", "none")
            self.assertEqual(rc, 1, domain)
            self.assertEqual(rep["lookup"]["status"], status)
            self.assertTrue(rep["lookup"]["error"])
            self.assertEqual(rep["targets"], [])
            self.assertFalse(rep["result"]["deliver"])

    def test_host_flag_and_hook(self):
        """--host: a name probed directly, its address from the test hook."""
        rc, rep = self.probe("gw-host.example.test", "--host", "--port",
                             self.gw.ports["good"], *self.trust())
        self.assertEqual(rep["mode"], "host")
        t = self.target(rep)
        self.assertEqual(t["address"], "127.0.0.1")
        self.assertEqual(t["reference_names"], ["gw-host.example.test"])
        self.assertEqual(rc, 1)
        self.assertEqual(t["verdicts"]["required-verify"]["reason"], "certificate-host-mismatch")

    def test_policy_from_config(self):
        """--policy config: the destination level the configuration gives
        the domain (required here)."""
        rc, rep = self.probe(DOMAIN, "--port", SHARED_PORT, "--policy", "config", "-c",
                             self.gw.config_path)
        self.assertEqual(rep["policy"], "required")
        self.assertEqual(rc, 0)
        rc, rep = self.probe("other.example.test:%d" % self.gw.ports["good"], "--policy",
                             "config", "-c", self.gw.config_path)
        self.assertEqual(rep["policy"], "preferred")

    # --- failures before TLS -----------------------------------------------------------
    def test_connection_refused(self):
        port = tt.free_port()
        rc, rep = self.probe("127.0.0.1:%d" % port, "--policy", "none")
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertEqual(t["failed_step"], "connect")
        self.assertFalse(t["connect"]["ok"])
        self.assertRegex(t["error"], r"^connect: Connection refused")
        self.assertIsNone(t["greeting"])
        for lv in LEVELS:
            self.assertEqual(t["verdicts"][lv]["reason"], "connect-failed")

    # --- text output and usage -----------------------------------------------------------
    def test_text_report(self):
        r = run_probe(self.host("wrongname"), *self.trust(), env=self.env())
        self.assertEqual(r.returncode, 1, r.stderr)
        out = r.stdout
        self.assertIn("tlsgate probe localhost: host, STARTTLS, port %d"
                      % self.gw.ports["wrongname"], out)
        for label in ("connect", "greeting", "EHLO", "STARTTLS", "TLS handshake", "protocol",
                      "cipher", "server temp key", "certificate 0", "chain", "name"):
            self.assertRegex(out, r"(?m)^  %s\s" % label)
        self.assertRegex(out, r"(?m)^  connect\s+\d+\.\d ms  ok$")
        self.assertRegex(out, r"(?m)^    required-verify\s+would NOT deliver: certificate name "
                         r"does not match localhost   <- --policy$")
        self.assertRegex(out, r"(?m)^    preferred\s+would deliver encrypted \(unverified\)$")
        self.assertRegex(out, r"(?m)^result: required-verify would NOT deliver to localhost")
        # columns line up: every timed row has its "ms" at the same place
        cols = {line.index(" ms  ") for line in out.splitlines() if " ms  " in line}
        self.assertEqual(len(cols), 1, out)

    def test_usage_errors(self):
        for args in ([], ["a.example", "b.example"], ["--policy", "sometimes", "x.example"],
                     ["--port", "0", "x.example"], ["--port", "70000", "x.example"],
                     ["host.example:notaport"], ["[not-an-address]:25"],
                     ["host.example:25", "--port", "26"], ["--bogus", "x.example"],
                     ["--trust", "/nonexistent/ca.pem", "x.example"],
                     ["-c", "/nonexistent/tlsgate.ini", "x.example"],
                     ["--policy", "config", "x.example"]):
            r = run_probe(*args, env=self.env())
            self.assertEqual(r.returncode, 2, "%r\n%s%s" % (args, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "", args)
            self.assertTrue(r.stderr, args)

    def test_help(self):
        r = run_probe("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: tlsgate probe DOMAIN | HOST[:PORT]", r.stdout)
        for opt in ("--starttls", "--implicit", "--port", "--ehlo", "--trust", "--policy",
                    "--json", "--certs-dir", "--timeout"):
            self.assertIn(opt, r.stdout)


# ---------------------------------------------------------------------------
# Against small stdlib servers: 1024-bit DHE, injection, silence.

class ProbeMiniServerTest(ProbeAssertions, unittest.TestCase):

    def server(self, **kw):
        s = MiniSMTP(**kw).start()
        self.addCleanup(s.stop)
        return s

    def test_dhe_1024_only(self):
        """Our client context (security level 2) refuses the 1024-bit
        group: "dh key too small"; the permissive retry shows what the
        server offers."""
        s = self.server(context=dhe1024_context())
        args = ["localhost:%d" % s.port, "--trust", tt.ca_file()]
        rc, rep = probe_json(*args)
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertTrue(t["starttls_offered"])
        self.assertEqual(t["starttls"]["code"], 220)
        self.assertEqual(t["failed_step"], "tls")
        self.assertEqual(t["error"], "TLS handshake failed: dh key too small")
        tls = t["tls"]
        self.assertFalse(tls["ok"])
        self.assertEqual(tls["reason"], "dh key too small")
        self.assertRegex(tls["error"], r"^\(\d+, 'error:[0-9A-F]+:SSL routines::dh key too small'\)$")
        self.assertNotIn("chain", tls)
        lax = t["permissive"]
        self.assertIsNotNone(lax)
        self.assertTrue(lax["ok"], lax)
        self.assertEqual(lax["protocol"], "TLSv1.2")
        self.assertEqual(lax["cipher"], "DHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(lax["temp_key"], {"kind": "DH", "group": "", "bits": 1024})
        self.assertEqual(lax["chain"][0]["key"], "RSA 2048 bits")
        self.assertTrue(lax["chain_verify"]["ok"])
        self.assertEqual(t["flags"], ["dh-key-too-small", "dh-below-2048"])
        self.assertVerdicts(t, {"none": (True, None),
                                "preferred": (False, "dh-key-too-small"),
                                "required": (False, "dh-key-too-small"),
                                "preferred-verify": (False, "dh-key-too-small"),
                                "required-verify": (False, "dh-key-too-small")})
        self.assertRegex(t["verdicts"]["required"]["text"],
                         r"^would NOT deliver: TLS handshake failed: dh key too small ")
        self.assertIn("fallback_plaintext", t["verdicts"]["preferred"]["text"])
        self.assertIn("handshake ok", s.events)  # the permissive retry
        self.assertTrue(any(e.startswith("handshake failed") for e in s.events), s.events)
        self.assertPolicyExit(args, ("none",))

    def test_dhe_1024_text_and_no_retry(self):
        s = self.server(context=dhe1024_context())
        r = run_probe("localhost:%d" % s.port, "--trust", tt.ca_file())
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"(?m)^  TLS handshake\s+\d+\.\d ms  FAILED: dh key too small$")
        self.assertRegex(r.stdout, r"(?m)^    server temp key\s+DH 1024 bits  ! below 2048 bits$")
        self.assertRegex(r.stdout, r"(?m)^  permissive retry\s+\d+\.\d ms  ok ")
        self.assertRegex(r.stdout, r"(?m)^  warnings\s+! dh-key-too-small: ")
        rc, rep = probe_json("localhost:%d" % s.port, "--no-retry")
        self.assertEqual(rc, 1)
        self.assertIsNone(self.target(rep)["permissive"])
        self.assertEqual(self.target(rep)["flags"], ["dh-key-too-small"])

    def test_data_after_starttls(self):
        s = self.server(context=good_context(), inject=b"250 injected\r\n")
        rc, rep = probe_json("localhost:%d" % s.port, "--trust", tt.ca_file())
        t = self.target(rep)
        self.assertTrue(t["starttls"]["data_after_220"])
        self.assertIn("data-after-starttls", t["flags"])
        self.assertTrue(t["tls"]["ok"])
        self.assertEqual(t["tls"]["ehlo"]["code"], 250)  # the injected line was not taken
        self.assertEqual(rc, 0)

    def test_silent_server_times_out(self):
        s = self.server(greet=False)
        start = time.monotonic()
        rc, rep = probe_json("127.0.0.1:%d" % s.port, "--timeout", "1", "--policy", "none")
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertEqual(t["failed_step"], "greeting")
        self.assertEqual(t["error"], "greeting: timed out")
        self.assertEqual(t["verdicts"]["none"]["reason"], "greeting-failed")


# ---------------------------------------------------------------------------
# Against a private Postfix.

class ProbePostfixTest(ProbeAssertions, unittest.TestCase):
    CERTS = ("good", "expired", "wrongname", "selfsigned", "untrusted")

    @classmethod
    def setUpClass(cls):
        try:
            import peers
        except ImportError as e:
            raise unittest.SkipTest("the peers module cannot be imported: %s" % e)
        if not hasattr(peers, "PostfixUpstream"):
            raise unittest.SkipTest("peers provides no PostfixUpstream")
        if not peers.postfix_available():
            raise unittest.SkipTest("postfix is not installed (tools/deps installs it)")
        if os.geteuid() != 0:
            raise unittest.SkipTest("a private Postfix instance needs root")
        smtpds = {}
        for name in cls.CERTS:
            cert, key = peers.cert_paths(name)
            smtpds[name] = {"smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key}
        smtpds["notls"] = {"smtpd_tls_security_level": "none"}
        cls.pf = peers.PostfixUpstream(smtpds=smtpds)
        try:
            cls.pf.start()
        except BaseException:
            cls.pf.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()

    def probe(self, smtpd, *args):
        return probe_json("localhost:%d" % self.pf.port_of(smtpd), "--trust", tt.ca_file(),
                          "--name", "mx.example.test", *args)

    def test_good(self):
        rc, rep = self.probe("good")
        self.assertEqual(rc, 0, rep["result"])
        t = self.target(rep)
        self.assertRegex(t["greeting"]["text"], r"^220 mx\.example\.test ESMTP")
        self.assertIn("STARTTLS", t["ehlo"]["extensions"])
        tls = self.assertTLS(t)
        self.assertEqual(tls["chain"][0]["subject"], "CN=mx.example.test,O=tlsgate tests")
        self.assertEqual(tls["name_verify"]["matched"], "mx.example.test")
        self.assertVerdicts(t, {lv: (True, None) for lv in LEVELS})

    def test_each_bad_certificate(self):
        expected = {"expired": "certificate-expired", "wrongname": "certificate-host-mismatch",
                    "selfsigned": "certificate-not-trusted",
                    "untrusted": "certificate-not-trusted"}
        for smtpd, reason in expected.items():
            with self.subTest(smtpd=smtpd):
                rc, rep = self.probe(smtpd)
                self.assertEqual(rc, 1)
                t = self.target(rep)
                self.assertTLS(t)
                self.assertVerdicts(t, {"none": (True, None), "preferred": (True, None),
                                        "required": (True, None),
                                        "preferred-verify": (True, reason),
                                        "required-verify": (False, reason)})

    def test_no_starttls(self):
        rc, rep = self.probe("notls", "--policy", "required")
        self.assertEqual(rc, 1)
        t = self.target(rep)
        self.assertFalse(t["starttls_offered"])
        self.assertEqual(t["verdicts"]["required"]["reason"], "starttls-not-supported")
        rc, _ = self.probe("notls", "--policy", "preferred")
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
