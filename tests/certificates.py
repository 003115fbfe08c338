"""Test certificates made with the openssl command: a CA, a server certificate for
127.0.0.1 and localhost signed by it, and client certificates signed by a second CA (the
one a server asks its clients' certificates to be signed by) and by a stranger."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_LEAF = ("basicConstraints=critical,CA:FALSE\n"
         "keyUsage=critical,digitalSignature\n"
         "subjectKeyIdentifier=hash\n"
         "authorityKeyIdentifier=keyid\n")


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    server_ca: Path
    server: KeyPair
    client_ca: Path
    client: KeyPair
    stranger: KeyPair  # a client certificate from a CA the server does not trust


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> KeyPair:
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    _openssl("req", "-x509", *_KEY, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(pair.key), "-out", str(pair.cert))
    return pair


def _leaf(folder: Path, name: str, ca: KeyPair, extensions: str) -> KeyPair:
    pair = KeyPair(folder / f"{name}.pem", folder / f"{name}.key")
    request, extfile = folder / f"{name}.csr", folder / f"{name}.ext"
    extfile.write_text(_LEAF + extensions)
    _openssl("req", "-new", *_KEY, "-subj", f"/CN={name}", "-keyout", str(pair.key),
             "-out", str(request))
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extfile), "-out", str(pair.cert))
    return pair


def make_certificates(folder: Path) -> Certificates:
    """Write the CAs and certificates to ``folder`` (created if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    server_ca, client_ca, stranger_ca = (_ca(folder, name)
                                         for name in ("server-ca", "client-ca", "stranger-ca"))
    server = _leaf(folder, "server", server_ca,
                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client = _leaf(folder, "client", client_ca, "extendedKeyUsage=clientAuth\n")
    stranger = _leaf(folder, "stranger", stranger_ca, "extendedKeyUsage=clientAuth\n")
    return Certificates(server_ca.cert, server, client_ca.cert, client, stranger)


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """The password's bcrypt hash; cost 4, the lowest, keeps tests fast."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
