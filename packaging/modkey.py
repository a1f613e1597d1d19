# SPDX-License-Identifier: GPL-2.0-or-later
"""The fleet's module signing key (Secure Boot): generated once, kept in a persistent directory.

Prebuilt modules are signed with it at build time (after stripping: strip drops an appended
signature), the kernel's way: `scripts/sign-file <hash> <key> <cert> <module>` from the headers
of the kernel the module is built for. Hosts enroll the certificate as a Machine Owner Key
(`mokutil --import /usr/share/vhost-blk/vhost-blk-modules.der`, package vhost-blk-module-cert).

The key lives under /var/lib (default /var/lib/vhostblk-fleet/module-key, $VHOSTBLK_STATE moves
it) next to the repository key, never in a cache: every host that enrolled the certificate trusts
exactly this key, and a new one has to be enrolled again on every host (a console at each boot).

Layout of the key directory:
  signing_key.pem      the private key (RSA 3072, no passphrase, mode 0600)
  signing_key.der      the X.509 certificate (DER), what hosts enroll and the package ships
  .lock                serialises key generation between concurrent builds
"""

import contextlib
import fcntl
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pkgcommon as pc

sys.path.insert(0, str(pc.REPO / "plugins" / "filter"))  # the kmod role reads sig_key with the same filter
from serial_to_sig_key import serial_to_sig_key  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_KEY_DIR = pc.STATE / "module-key"
CERT_PACKAGE = "vhost-blk-module-cert"
CERT_PATH = "usr/share/vhost-blk/vhost-blk-modules.der"  # in the package, without the leading /
SUBJECT = "vhost-blk fleet module signing key"

# The kernel's own certs/default_x509.genkey asks for the same: not a CA, signs code only.
OPENSSL_CONFIG = f"""[ req ]
distinguished_name = dn
prompt = no
x509_extensions = ext
[ dn ]
O = vhost-blk fleet
CN = {SUBJECT}
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = codeSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class ModuleKey:
    def __init__(self, key_dir=DEFAULT_KEY_DIR):
        self.dir = Path(key_dir)
        self.key = self.dir / "signing_key.pem"
        self.cert = self.dir / "signing_key.der"

    @contextlib.contextmanager
    def _locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(self):
        """Create the key pair if the directory has none; return the certificate's path."""
        with self._locked():
            if self.key.exists() != self.cert.exists():
                raise SystemExit(f"{self.dir}: one of {self.key.name} / {self.cert.name} is missing; "
                                 "restore it from a backup (a new key must be enrolled on every host again)")
            if not self.key.exists():
                tmp_key, tmp_cert = self.dir / "signing_key.pem.tmp", self.dir / "signing_key.der.tmp"
                old = os.umask(0o077)
                try:
                    pc.run(["openssl", "req", "-new", "-x509", "-newkey", "rsa:3072", "-nodes", "-days", "36500",
                            "-sha256", "-config", "/dev/stdin", "-keyout", tmp_key, "-outform", "DER",
                            "-out", tmp_cert], input=OPENSSL_CONFIG, capture_output=True, text=True)
                finally:
                    os.umask(old)
                os.chmod(tmp_cert, 0o644)
                tmp_cert.replace(self.cert)
                tmp_key.replace(self.key)
            return self.cert

    def _x509(self, *args):
        return pc.run(["openssl", "x509", "-inform", "DER", "-in", self.cert, "-noout", *args],
                      capture_output=True, text=True).stdout

    def key_id(self):
        """What modinfo prints as sig_key for a module signed with this key: sign-file names the
        signer by issuer and serial number, so the serial (upper-case hex bytes, ':'-separated)."""
        sig_key = serial_to_sig_key(self._x509("-serial"))
        if not sig_key:
            raise SystemExit(f"{self.cert}: no serial number")
        return sig_key

    def signer(self):
        """What modinfo prints as signer: the certificate's common name."""
        return SUBJECT

    def package_version(self):
        """Version of vhost-blk-module-cert: the certificate's notBefore (a new key sorts higher)."""
        text = self._x509("-startdate").strip().split("=", 1)[1]
        when = datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
        return when.strftime("%Y%m%d.%H%M%S")

    def sign(self, module, headers, krel):
        """Append the signature to module with the sign-file of the kernel's headers."""
        sign_file = sign_file_for(headers, krel)
        pc.run([sign_file, module_sig_hash(headers), self.key, self.cert, module], capture_output=True, text=True)


def sign_file_for(headers, krel):
    """scripts/sign-file of the headers tree, else Debian's linux-kbuild-<major.minor> copy."""
    major_minor = ".".join(krel.split(".")[:2])
    candidates = [Path(headers) / "scripts" / "sign-file",
                  *sorted(Path("/usr/lib").glob(f"linux-kbuild-{major_minor}*/scripts/sign-file"))]
    for cand in candidates:
        if os.access(cand, os.X_OK):
            return cand
    raise SystemExit(f"no scripts/sign-file for {krel} (looked at {', '.join(map(str, candidates))}): "
                     f"install linux-headers-{krel}")


def module_sig_hash(headers):
    """CONFIG_MODULE_SIG_HASH of the kernel (sha256 on Debian), sha512 as dkms assumes without one."""
    config = Path(headers) / ".config"
    text = config.read_text() if config.is_file() else ""
    found = re.search(r'^CONFIG_MODULE_SIG_HASH="([a-z0-9-]+)"$', text, re.M)
    return found.group(1) if found else "sha512"
