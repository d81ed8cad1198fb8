"""Instance passwords: ECS's complexity rules, and SHA-512 crypt(3) hashes for the guest.

The hash ($6$, the glibc/libxcrypt default) is what the guest's init agent writes to
/etc/shadow; the password itself is never stored. Python's `crypt` module is deprecated
(gone in 3.13), so the algorithm is implemented here, checked against it in the tests."""

from __future__ import annotations

import hashlib
import secrets
import string

from nubes import errors

_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SPECIALS = set("()`~!@#$%^&*-_+=|{}[]:;'<>,.?/")
_ROUNDS = 5000


def check_password(password: str) -> None:
    """8 to 30 characters from at least three of: upper case, lower case, digits, specials."""
    classes = [
        any(c in string.ascii_uppercase for c in password),
        any(c in string.ascii_lowercase for c in password),
        any(c in string.digits for c in password),
        any(c in _SPECIALS for c in password),
    ]
    allowed = set(string.ascii_letters + string.digits) | _SPECIALS
    if not 8 <= len(password) <= 30 or sum(classes) < 3 or not set(password) <= allowed:
        raise errors.invalid_password_malformed()


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_B64[w & 0x3F])
        w >>= 6
    return "".join(out)


def sha512_crypt(password: str, salt: str | None = None) -> str:
    """crypt(3) "$6$" (SHA-512) with the default 5000 rounds."""
    salt = (salt or "".join(secrets.choice(_B64) for _ in range(16)))[:16]
    key, salt_bytes = password.encode(), salt.encode()
    b = hashlib.sha512(key + salt_bytes + key).digest()
    a = hashlib.sha512(key + salt_bytes)
    length = len(key)
    while length > 64:
        a.update(b)
        length -= 64
    a.update(b[:length])
    length = len(key)
    while length:
        a.update(b if length & 1 else key)
        length >>= 1
    digest_a = a.digest()
    dp = hashlib.sha512(key * len(key)).digest()
    p = (dp * (len(key) // 64 + 1))[: len(key)]
    ds = hashlib.sha512(salt_bytes * (16 + digest_a[0])).digest()
    s = ds[: len(salt_bytes)]
    c = digest_a
    for i in range(_ROUNDS):
        h = hashlib.sha512()
        h.update(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()
    order = [
        (0, 21, 42),
        (22, 43, 1),
        (44, 2, 23),
        (3, 24, 45),
        (25, 46, 4),
        (47, 5, 26),
        (6, 27, 48),
        (28, 49, 7),
        (50, 8, 29),
        (9, 30, 51),
        (31, 52, 10),
        (53, 11, 32),
        (12, 33, 54),
        (34, 55, 13),
        (56, 14, 35),
        (15, 36, 57),
        (37, 58, 16),
        (59, 17, 38),
        (18, 39, 60),
        (40, 61, 19),
        (62, 20, 41),
    ]
    encoded = "".join(_b64_from_24bit(c[x], c[y], c[z], 4) for x, y, z in order)
    encoded += _b64_from_24bit(0, 0, c[63], 2)
    return f"$6${salt}${encoded}"
