"""`tlsgate trust ...`: the trust anchors in CERTS_DIR/trust.

`trust add | list | remove` are judged with the openssl CLI (fingerprints,
subjects, `openssl verify`).  `trust fetch` runs against loopback listeners
of tlsgate itself, one STARTTLS and one implicit TLS, that serve the test
CA's leaf and intermediate: it must store one file per presented
certificate, named by its CN, and say whether the chain verifies against
the current trust store.
"""

import json
import os
import shutil
import unittest

from tlsgate_test import GatewayTestCase, free_port
from test_cert import Store, fingerprint, openssl_ok, pem_blocks, subject_of, write


class TrustStoreTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.s = Store(trust=False)
        self.addCleanup(self.s.remove)
        self.trust = os.path.join(self.s.certs, "trust")

    def files(self):
        return sorted(os.listdir(self.trust)) if os.path.isdir(self.trust) else []

    def test_add_list_remove(self):
        ca = self.s.ca_path("ca.pem")
        r = self.s.cli("trust", "add", ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.files(), ["tlsgate_Test_Root_CA.pem"])
        stored = os.path.join(self.trust, "tlsgate_Test_Root_CA.pem")
        self.assertEqual(fingerprint(pem_blocks(stored)[0]), fingerprint(pem_blocks(ca)[0]))
        self.assertIn(fingerprint(pem_blocks(ca)[0]), r.stdout)
        # the same certificate again: nothing new
        r = self.s.cli("trust", "add", ca)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already trusted", r.stdout)
        self.assertEqual(self.files(), ["tlsgate_Test_Root_CA.pem"])
        # another certificate under a taken --name needs --force
        other = self.s.ca_path("other-ca.pem")
        r = self.s.cli("trust", "add", other, "--name", "tlsgate_Test_Root_CA")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--force", r.stderr)
        r = self.s.cli("trust", "add", other, "--name", "other.pem")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.files(), ["other.pem", "tlsgate_Test_Root_CA.pem"])
        r = self.s.cli("trust", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        data = json.loads(r.stdout)
        anchors = {a["file"]: a for a in data["anchors"]}
        self.assertEqual(sorted(anchors), ["other.pem", "tlsgate_Test_Root_CA.pem"])
        root = anchors["tlsgate_Test_Root_CA.pem"]
        self.assertEqual(root["sha256"], fingerprint(pem_blocks(ca)[0]))
        self.assertEqual(root["subject"], subject_of(pem_blocks(ca)[0]))
        self.assertTrue(root["ca"])
        self.assertTrue(root["self_signed"])
        r = self.s.cli("trust", "list")
        self.assertIn("tlsgate_Test_Root_CA.pem", r.stdout)
        self.assertIn("system store: used as well", r.stdout)
        r = self.s.cli("trust", "remove", "other")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.files(), ["tlsgate_Test_Root_CA.pem"])
        r = self.s.cli("trust", "remove", "other")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no trust anchor other", r.stderr)
        self.assertEqual(self.s.cli("trust", "remove", "../certs/x").returncode, 2)

    def test_add_der_and_bundles(self):
        der = self.s.file("ca.der")
        openssl_ok("x509", "-in", self.s.ca_path("ca.pem"), "-outform", "DER", "-out", der)
        self.assertEqual(self.s.cli("trust", "add", der).returncode, 0)
        # a leaf-and-intermediate file: one anchor file per certificate
        good = self.s.ca_path("good/cert.pem")
        r = self.s.cli("trust", "add", good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("not a CA certificate", r.stderr)
        self.assertEqual(self.files(), ["mx.example.test.pem", "tlsgate_Test_Intermediate_CA.pem",
                                        "tlsgate_Test_Root_CA.pem"])
        self.assertEqual(self.s.cli("trust", "add", good, "--name", "x").returncode, 2)
        # the anchors together verify the chain (the judge: openssl verify)
        out = openssl_ok("verify", "-CAfile",
                         os.path.join(self.trust, "tlsgate_Test_Root_CA.pem"), "-untrusted",
                         os.path.join(self.trust, "tlsgate_Test_Intermediate_CA.pem"),
                         os.path.join(self.trust, "mx.example.test.pem"))
        self.assertIn(": OK", out)

    def test_add_refuses_what_is_not_a_certificate(self):
        r = self.s.cli("trust", "add", self.s.ca_path("ca.key"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("holds a private key, not a certificate", r.stderr)
        self.assertNotIn("PRIVATE", r.stdout + r.stderr)
        r = self.s.cli("trust", "add", write(self.s.file("x.pem"), "junk\n"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not a certificate file", r.stderr)
        self.assertEqual(self.files(), [])


class TrustFetchTest(GatewayTestCase):
    """Fetches the chain from the gateway's own STARTTLS and implicit-TLS
    listeners ("good": leaf mx.example.test + the test intermediate)."""

    share_gateway = True
    listener_config = {
        "st": {"certificate": "good"},
        "imp": {"certificate": "good", "implicit_tls": "yes"},
        "self": {"certificate": "selfsigned"},
    }

    def setUp(self):
        super().setUp()
        self.s = Store(trust=False)
        self.addCleanup(self.s.remove)
        self.trust = os.path.join(self.s.certs, "trust")
        self.served = pem_blocks(os.path.join(self.s.ca, "good", "cert.pem"))

    def target(self, listener):
        return "%s:%d" % (self.gw.listener_host(listener), self.gw.ports[listener])

    def files(self):
        return sorted(os.listdir(self.trust)) if os.path.isdir(self.trust) else []

    def stored(self, name):
        return pem_blocks(os.path.join(self.trust, name))

    def assert_fetched_chain(self, r):
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.files(), ["mx.example.test.pem", "tlsgate_Test_Intermediate_CA.pem"])
        self.assertEqual(self.stored("mx.example.test.pem"), self.served[:1])
        self.assertEqual(self.stored("tlsgate_Test_Intermediate_CA.pem"), self.served[1:])
        for pem in self.served:
            self.assertIn(fingerprint(pem), r.stdout)
        # the store is empty, so the presented chain cannot verify yet
        self.assertIn("does NOT verify against the current trust store", r.stdout)
        self.assertIn("name: 127.0.0.1 matches the certificate", r.stdout)
        # the judge: with the root, the stored files make a valid chain
        out = openssl_ok("verify", "-CAfile", self.s.ca_path("ca.pem"), "-untrusted",
                         os.path.join(self.trust, "tlsgate_Test_Intermediate_CA.pem"),
                         os.path.join(self.trust, "mx.example.test.pem"))
        self.assertIn(": OK", out)

    def test_fetch_starttls(self):
        r = self.s.cli("trust", "fetch", self.target("st"), "--starttls", "smtp", "--yes")
        self.assertIn("(STARTTLS, TLSv1.", r.stdout)
        self.assert_fetched_chain(r)

    def test_fetch_implicit_tls(self):
        r = self.s.cli("trust", "fetch", self.target("imp"), "--implicit", "--yes")
        self.assertIn("(implicit TLS, TLSv1.", r.stdout)
        self.assert_fetched_chain(r)

    def test_fetch_says_when_the_chain_verifies(self):
        os.makedirs(self.trust, exist_ok=True)
        shutil.copy(self.s.ca_path("ca.pem"), os.path.join(self.trust, "root.pem"))
        r = self.s.cli("trust", "fetch", self.target("st"), "--yes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the chain verifies against the current trust store: complete chain",
                      r.stdout)
        self.assertEqual(len(self.files()), 3)
        # fetched again: everything is already trusted
        r = self.s.cli("trust", "fetch", self.target("st"), "--yes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to store", r.stdout)
        self.assertEqual(r.stdout.count("already trusted:"), 2)

    def test_fetch_asks_before_storing(self):
        r = self.s.cli("trust", "fetch", self.target("st"), input="n\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("store 2 new certificate(s)", r.stderr)
        self.assertIn("nothing stored", r.stdout)
        self.assertEqual(self.files(), [])
        r = self.s.cli("trust", "fetch", self.target("st"), input="y\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.files()), 2)

    def test_fetch_self_signed_and_name_clash(self):
        # another certificate with the CN mx.example.test is already there
        os.makedirs(self.trust, exist_ok=True)
        shutil.copy(self.s.ca_path("good/cert.pem"), os.path.join(self.trust,
                                                                  "mx.example.test.pem"))
        r = self.s.cli("trust", "fetch", self.target("self"), "--yes")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("does NOT verify", r.stdout)
        self.assertIn("self-signed", r.stdout)
        self.assertIn("mx.example.test-2.pem", self.files())
        self.assertEqual(self.stored("mx.example.test-2.pem"),
                         pem_blocks(self.s.ca_path("selfsigned/cert.pem")))

    def test_fetch_errors(self):
        # STARTTLS against the implicit-TLS port: the hint says --implicit
        r = self.s.cli("trust", "fetch", self.target("imp"), "--starttls", "smtp", "--timeout",
                       "3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--implicit", r.stderr)
        # implicit TLS against the STARTTLS port: the handshake fails
        r = self.s.cli("trust", "fetch", self.target("st"), "--implicit", "--timeout", "3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("TLS handshake with", r.stderr)
        # nobody listening
        r = self.s.cli("trust", "fetch", "127.0.0.1:%d" % free_port(), "--timeout", "3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect", r.stderr)
        self.assertEqual(self.files(), [])
        self.assertEqual(self.s.cli("trust", "fetch", "127.0.0.1:99999").returncode, 2)


if __name__ == "__main__":
    unittest.main()
