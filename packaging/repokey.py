# SPDX-License-Identifier: GPL-2.0-or-later
"""The local repository's signing key: generated once, kept in a persistent directory.

The key lives under /var/lib (default /var/lib/vhostblk-fleet/repo-key, $VHOSTBLK_STATE moves
it), where no cache cleaner removes it: clients trust this key, and a new one would have to be
redistributed to every host. Earlier versions kept it in /var/cache/vhostblk-fleet/repo-key: when
the default directory has no key and that one has, the key is moved over (copied, checked to be the
same fingerprint, then removed from the cache), so clients' trusted key does not change.

Layout of the key directory:
  gnupg/               GNUPGHOME holding the secret key (no passphrase, mode 0700)
  vhostblk-local.gpg   the public key as a binary keyring, for apt's signed-by=
  fingerprint          the key's fingerprint
  .lock                serialises key generation and signing between concurrent builds

Every gpg call runs with --batch; the gpg-agent that gpg starts for the secret key is stopped
again afterwards, so no process is left behind.
"""

import contextlib
import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pkgcommon as pc

DEFAULT_KEY_DIR = pc.STATE / "repo-key"
LEGACY_KEY_DIR = pc.CACHE / "repo-key"  # before the key moved to /var/lib
KEYRING_NAME = "vhostblk-local.gpg"
KEY_UID = "vhost-blk fleet local repository <vhostblk-fleet@example.org>"


class RepoKey:
    def __init__(self, key_dir=DEFAULT_KEY_DIR, migrate_from=None):
        """migrate_from: an older key directory whose key is moved here when this one has none
        (default: the old /var/cache location, only for the default key directory)."""
        self.dir = Path(key_dir)
        self.home = self.dir / "gnupg"
        self.keyring = self.dir / KEYRING_NAME
        if migrate_from is None and self.dir == DEFAULT_KEY_DIR:
            migrate_from = LEGACY_KEY_DIR
        self.migrate_from = Path(migrate_from) if migrate_from else None
        self.migrated = False

    def _gpg(self, *args, **kwargs):
        env = dict(os.environ, GNUPGHOME=str(self.home), LC_ALL="C")
        return pc.run(["gpg", "--batch", "--no-tty", "--quiet", *args], env=env,
                      capture_output=True, **kwargs)

    @contextlib.contextmanager
    def _locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                # stop the agent this GNUPGHOME started (no-op when none runs)
                subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=dict(os.environ, GNUPGHOME=str(self.home)),
                               capture_output=True, check=False)

    def fingerprint(self):
        out = self._gpg("--with-colons", "--list-secret-keys", text=True).stdout
        fprs = [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")]
        return fprs[0] if fprs else None

    def ensure(self):
        """Create the key if the directory has none; (re)export the public keyring; return the fingerprint."""
        with self._locked():
            self._migrate()
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.home, 0o700)
            fpr = self.fingerprint()
            if fpr is None:
                self._gpg("--passphrase", "", "--pinentry-mode", "loopback",
                          "--quick-generate-key", KEY_UID, "ed25519", "sign", "never")
                fpr = self.fingerprint()
                if fpr is None:
                    raise SystemExit(f"gpg created no key in {self.home}")
            public = self._gpg("--export", fpr).stdout
            if not public:
                raise SystemExit("gpg exported an empty public key")
            tmp = self.keyring.with_suffix(".tmp")
            tmp.write_bytes(public)
            os.chmod(tmp, 0o644)
            tmp.replace(self.keyring)
            (self.dir / "fingerprint").write_text(fpr + "\n")
            return fpr

    def _migrate(self):
        """Move the key of migrate_from here when this directory has none (under the lock)."""
        old = self.migrate_from
        if old is None or (self.home / "pubring.kbx").exists() or not (old / "gnupg" / "pubring.kbx").exists():
            return
        old_key = RepoKey(old, migrate_from=False)
        want = old_key.fingerprint()
        if want is None:
            return
        tmp = self.dir / "gnupg.migrating"
        shutil.rmtree(tmp, ignore_errors=True)
        # sockets and lock files of a running agent are not part of the key
        shutil.copytree(old / "gnupg", tmp, ignore=shutil.ignore_patterns("S.*", "*.lock", ".#*"))
        os.chmod(tmp, 0o700)
        if self.home.exists():
            shutil.rmtree(self.home)
        tmp.rename(self.home)
        got = self.fingerprint()
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=dict(os.environ, GNUPGHOME=str(old / "gnupg")),
                       capture_output=True, check=False)
        if got != want:
            raise SystemExit(f"moving the signing key from {old} to {self.dir} gave {got}, not {want}: "
                             f"{old} left as it was")
        shutil.rmtree(old)  # no second copy of the secret key in a cache directory
        self.migrated = True

    def sign_release(self, release):
        """Write InRelease (clearsigned) and Release.gpg (detached) next to the Release file."""
        release = Path(release)
        fpr = self.ensure()
        with self._locked():
            common = ("--yes", "--digest-algo", "SHA512", "--local-user", fpr)
            self._gpg(*common, "--clearsign", "--output", release.parent / "InRelease", release)
            self._gpg(*common, "--armor", "--detach-sign", "--output", release.parent / "Release.gpg", release)
        return fpr
