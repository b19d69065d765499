"""Certificates for TLS tests, made with the ``openssl`` command-line tool, and a
redis-server that only speaks TLS."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.servers import RedisServer, free_port, require_binary

OPENSSL = shutil.which("openssl")


def _openssl(*args: str) -> None:
    subprocess.run(
        [require_binary(OPENSSL, "openssl"), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )


class CertificateAuthority:
    """A throwaway CA (EC P-256) that signs certificates for 127.0.0.1/localhost."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.key = folder / f"{name}-ca.key"
        self.cert = folder / f"{name}-ca.crt"
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(self.key))
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-sha256", "-days", "2",
            "-subj", f"/CN=chatkeep test CA {name}", "-out", str(self.cert),
        )  # fmt: skip

    def issue(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) for a server on 127.0.0.1 / localhost."""
        key = self.folder / f"{name}.key"
        csr = self.folder / f"{name}.csr"
        cert = self.folder / f"{name}.crt"
        ext = self.folder / f"{name}.ext"
        ext.write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
        _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
        return cert, key


class TlsRedis:
    """A redis-server listening only on a TLS port, its CA, and an unrelated CA."""

    def __init__(self, *extra_args: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chatkeep-tls-"))
        self.ca = CertificateAuthority(self.dir, "good")
        self.other_ca = CertificateAuthority(self.dir, "other")
        cert, key = self.ca.issue("server")
        port = free_port()
        self.server = RedisServer(
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(self.ca.cert), "--tls-auth-clients", "no",
            *extra_args,
            port=port,
        )  # fmt: skip

    @property
    def port(self) -> int:
        return self.server.port

    def url(self, userinfo: str = "", ca: Path | None = None) -> str:
        """A ``rediss://`` URL that verifies the server against ``ca`` (default: the right one)."""
        return (
            f"rediss://{userinfo}127.0.0.1:{self.port}/0"
            f"?ssl_ca_certs={ca or self.ca.cert}&ssl_cert_reqs=required"
        )

    def start(self) -> TlsRedis:
        self.server.start()
        return self

    def cleanup(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
