"""Create a new mesh root CA: `python -m tools.mesh_ca --stack production [--out DIR]`.

Writes `root-cert.pem` and `root-key.pem` (mode 0600) to DIR and prints the
`pulumi config set --secret` lines that store them in the stack's encrypted config. The key is
read from the file through stdin, never put on a command line (shell history, `ps`). Keep the
key offline afterwards (a password manager or HSM): every cluster's intermediate is issued from it.
See docs/security.md for first setup and rotation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from components.security.mesh_ca import ORGANIZATION

CONFIG_CERT = "service-mesh:meshCaRootCert"
CONFIG_KEY = "service-mesh:meshCaRootKey"


def new_root(
    common_name: str, years: int = 10, key_size: int = 4096
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed root that may sign exactly one level of intermediates (pathlen 1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


OUTPUTS = ("root-cert.pem", "root-key.pem")


def write_root(out: Path, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    """Both files, created new (`O_EXCL`: never an existing file or a link, even one that
    appears between a check and the write), the key mode 0600. Raises `FileExistsError`, with
    nothing written, when either exists."""
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = (out / name for name in OUTPUTS)
    new = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    key_fd = os.open(key_path, new, 0o600)
    try:
        cert_fd = os.open(cert_path, new, 0o644)
    except BaseException:
        os.close(key_fd)
        key_path.unlink()  # the empty file this call just created, and nothing else
        raise
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with os.fdopen(key_fd, "wb") as f:
        f.write(key_bytes)
    with os.fdopen(cert_fd, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def config_commands(stack: str, cert_path: Path, key_path: Path) -> list[str]:
    return [
        f"pulumi config set --secret --stack {stack} {CONFIG_CERT} < {cert_path}",
        f"pulumi config set --secret --stack {stack} {CONFIG_KEY} < {key_path}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.mesh_ca", description=__doc__)
    parser.add_argument("--stack", required=True, help="stack the root is for, e.g. production")
    parser.add_argument("--out", type=Path, default=Path("mesh-ca"), help="output directory")
    parser.add_argument("--common-name", help="subject CN (default: '<stack> mesh root CA')")
    parser.add_argument("--years", type=int, default=10, help="validity in years (default 10)")
    args = parser.parse_args(argv)

    def refuse(path: Path) -> int:
        print(f"error: {path} exists; refusing to overwrite it", file=sys.stderr)
        return 2

    # A first look spares generating a key for nothing; `write_root` is what guarantees it.
    for name in OUTPUTS:
        if os.path.lexists(args.out / name):
            return refuse(args.out / name)
    cert, key = new_root(args.common_name or f"{args.stack} mesh root CA", args.years)
    try:
        cert_path, key_path = write_root(args.out, cert, key)
    except FileExistsError as error:
        return refuse(Path(error.filename or args.out))
    print(f"# New mesh root CA in {args.out} (key mode 0600). Store it in the stack config:")
    for line in config_commands(args.stack, cert_path, key_path):
        print(line)
    print(f"# Then move {key_path} offline and delete it here.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
