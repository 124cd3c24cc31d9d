"""Checksum and shape checks that confirm a detector's candidate match (Luhn, IBAN mod 97,
CPF and DNI/NIE check digits, SSN, phone, IP and AWS-secret shapes)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _luhn_ok(text: str) -> bool:
    digits = _digits(text)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _cpf_ok(text: str) -> bool:
    d = [int(ch) for ch in _digits(text)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    return all(sum(d[i] * (n + 1 - i) for i in range(n)) * 10 % 11 % 10 == d[n] for n in (9, 10))


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIE_PREFIX = str.maketrans("XYZ", "012")


def _dni_ok(text: str) -> bool:
    compact = text.upper().replace("-", "")
    number = compact[0].translate(_NIE_PREFIX) + compact[1:-1]  # NIE: X/Y/Z stand for 0/1/2
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == compact[-1]


def _ssn_ok(text: str) -> bool:
    area, group, serial = text.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone_digits_ok(low: int, high: int) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        digits = _digits(text)
        return low <= len(digits) <= high and len(set(digits)) > 2

    return ok


def _ipv4_ok(text: str) -> bool:
    return not text.startswith("0")


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    groups = [g for g in text.split(":") if g]
    return len(groups) >= 3 or any(len(g) >= 3 for g in groups)


def _aws_secret_ok(text: str) -> bool:
    return any(c.isdigit() for c in text) and not text.islower() and not text.isupper()
