"""ICC profiles built by the tests: Display P3 (as phones tag their photos) without any file from elsewhere."""
import struct
from typing import List, Tuple

# Display P3's primaries adapted to the ICC's D50 (Bradford), as Apple's profile holds them; its curve is sRGB's.
P3_COLORANTS = ((0.515102, 0.241182, -0.001049), (0.291965, 0.692236, 0.041885), (0.157153, 0.066582, 0.784378))
D50 = (0.9642, 1.0, 0.8249)
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # parametric curve type 3: g, a, b, c, d


def _fixed(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def _xyz(xyz: Tuple[float, float, float]) -> bytes:
    return b"XYZ \0\0\0\0" + _fixed(*xyz)


def _text(text: str) -> bytes:
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16


def _curve(points: int) -> bytes:
    """sRGB's curve: parametric, or a table of ``points`` entries (a large profile)."""
    if not points:
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + _fixed(*SRGB_CURVE)
    g, a, b, c, d = SRGB_CURVE
    x = [i / (points - 1) for i in range(points)]
    table = [(a * v + b) ** g if v >= d else c * v for v in x]
    return b"curv\0\0\0\0" + struct.pack(f">I{points}H", points, *(round(v * 65535) for v in table))


def display_p3(description: str = "Display P3 (carseg test)", curve_points: int = 0) -> bytes:
    """An ICC v4 matrix/curve display profile of Display P3; ``curve_points`` > 0 makes its three curves tables of
    that many entries each (up to 32767; 16384: a ~98 KB profile, over one JPEG segment's 64 KB)."""
    tags: List[Tuple[bytes, bytes]] = [
        (b"desc", _text(description)), (b"cprt", _text("No copyright, use freely")), (b"wtpt", _xyz(D50)),
        (b"rXYZ", _xyz(P3_COLORANTS[0])), (b"gXYZ", _xyz(P3_COLORANTS[1])), (b"bXYZ", _xyz(P3_COLORANTS[2])),
        (b"rTRC", _curve(curve_points)), (b"gTRC", _curve(curve_points)), (b"bTRC", _curve(curve_points))]
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)  # tags start on 4-byte boundaries
        table += struct.pack(">4sII", signature, offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s6H4s4sI", size, b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ",
                         2024, 1, 1, 0, 0, 0, b"acsp", b"APPL", 0)
    header += b"\0" * (68 - len(header)) + _fixed(*D50)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data
