"""The piece of the RFB (VNC) protocol nubes computes itself: the answer to VNC authentication's
challenge, which is the 16-byte challenge DES-encrypted (ECB) with the password as the key (at
most 8 bytes, zero-padded, each byte's bits reversed: RFB 3.8, section 7.2.2). Used by the
emulator's stand-in VNC server and by tests that speak RFB to a VM."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


def _reversed_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """The 16 bytes a client answers `challenge` with when it knows `password`."""
    if len(challenge) != 16:
        raise ValueError("a VNC challenge has 16 bytes")
    key = bytes(_reversed_bits(b) for b in password.encode("latin-1")[:8].ljust(8, b"\0"))
    # single DES is TripleDES with the key three times (EDE with one key); cryptography keeps
    # DES only there
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()
