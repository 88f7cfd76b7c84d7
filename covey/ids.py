"""Object IDs and base36, as Docker Swarm spells them."""
import secrets

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25  # 128 bits in base36


def base36(value: int, width: int) -> str:
    """`value` in base36, left-padded with zeros to `width` characters."""
    digits = []
    while value:
        value, rem = divmod(value, 36)
        digits.append(ALPHABET[rem])
    text = "".join(reversed(digits)) or "0"
    if len(text) > width:
        raise ValueError(f"{value} does not fit in {width} base36 digits")
    return text.rjust(width, "0")


def new_id() -> str:
    """A fresh random object ID: 128 random bits, 25 base36 characters."""
    return base36(secrets.randbits(128), ID_LENGTH)
