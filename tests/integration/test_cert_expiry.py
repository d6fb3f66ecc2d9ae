"""The gateway warns about certificates that expire within 30 days: a
Warning line in the mail log at start, and with [alerts] an alert message
through the alert route (here the local Maildir)."""
import os
import subprocess
import unittest

from tlsgate_test import GatewayTestCase


def make_short_cert(certs_dir, name, days):
    d = os.path.join(certs_dir, name)
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(d, "key.pem"),
                    "-out", os.path.join(d, "cert.pem"), "-days", str(days), "-subj",
                    "/CN=mx.example.test", "-addext", "subjectAltName=DNS:mx.example.test"],
                   check=True, capture_output=True, timeout=30)
    os.chmod(os.path.join(d, "key.pem"), 0o600)


class ExpiryTest(GatewayTestCase):
    listener_config = {"in": {"certificate": "shortlived"}}
    extra_config = "[alerts]\nrecipients = postmaster@example.test\nroute = local\n"

    @classmethod
    def make_gateway(cls, **over):
        gw = super().make_gateway(**over)
        make_short_cert(gw.certs_dir, "shortlived", 10)
        return gw

    def test_warning_and_alert_at_start(self):
        line = self.gw.wait_for_log(r"^certificate shortlived \(.*\) expires in (9|10) days",
                                    level="Warning")
        self.assertIn("mx.example.test", line.string)
        self.gw.wait_for_log(r"^alert about certificate:shortlived sent to 1 recipients")
        msgs = self.gw.wait_messages(1)
        self.assertIn(b"Subject: tlsgate alert: certificate shortlived expires soon", msgs[0])
        self.assertIn(b"tlsgate cert renew shortlived", msgs[0])


class NoWarningTest(GatewayTestCase):
    listener_config = {"in": {"certificate": "good"}}

    def test_long_lived_certificate_is_quiet(self):
        self.gw.wait_for_log(r"^tlsgate started")
        self.assertFalse(any("expires in" in t for t in self.gw.log_texts()))


if __name__ == "__main__":
    unittest.main()
