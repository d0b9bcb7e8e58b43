"""A throwaway certificate authority and server certificate so the sandbox can serve real HTTPS.

simple-salesforce always builds ``https://`` URLs, so the sandbox must speak TLS; clients trust only
``ca_file`` (``requests.Session().verify = ca_file``).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class SandboxTLS:
    """PEM files: the CA to trust, and the server's certificate chain and private key."""

    ca_file: str
    cert_file: str
    key_file: str

    @classmethod
    def create(
        cls, directory: str | Path | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> SandboxTLS:
        """Mint a CA and a server certificate for ``hosts``; write the PEMs into a new folder in ``directory``.

        Each call gets its own folder, so sandboxes started side by side in one ``directory`` keep
        their own CA (clients of the first still trust the first); the paths are absolute, so they
        hold from any working directory.
        """
        base = Path(directory).resolve() if directory is not None else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        where = Path(tempfile.mkdtemp(prefix="sf-sandbox-tls-", dir=base))
        ca = trustme.CA(organization_name="Closedloop Salesforce sandbox")
        cert = ca.issue_cert(*hosts)
        ca_file, cert_file, key_file = where / "ca.pem", where / "server-chain.pem", where / "server-key.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_file))
        key_file.chmod(0o600)
        return cls(str(ca_file), str(cert_file), str(key_file))

    def remove(self) -> None:
        """Delete the folder :meth:`create` made (once the server using it has stopped)."""
        shutil.rmtree(Path(self.ca_file).parent, ignore_errors=True)
