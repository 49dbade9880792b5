"""A WAV file's RIFF header, read directly: libsndfile refuses a broken or exotic WAV without saying
why, and a WAV cut short still decodes, so the header is where the reason and the missing length are.
"""

from __future__ import annotations

import os
import struct

# WAV format tags libsndfile decodes (PCM, float, A/u-law, MS/IMA ADPCM, GSM 6.10, G.721, extensible).
# When it refuses a WAV with any other tag, the error names the tag: `unsupported format: wav codec ...`
DECODABLE_CODECS = frozenset({0x0001, 0x0002, 0x0003, 0x0006, 0x0007, 0x0011, 0x0031, 0x0040, 0xFFFE})
CODEC_NAMES = {
    0x0050: "mpeg",
    0x0055: "mp3",
    0x0083: "g.729a",
    0x0092: "ac-3",
    0x00FF: "aac",
    0x0160: "wma",
    0x0161: "wma",
    0x0162: "wma pro",
    0x0163: "wma lossless",
    0x1610: "aac",
    0x2000: "ac-3",
    0x2001: "dts",
    0x6771: "vorbis",
    0xF1AC: "flac",
}


def riff_chunks(path: str | os.PathLike, limit: int = 1 << 20) -> dict[bytes, tuple[int, bytes]] | None:
    """{chunk id: (declared size, first bytes of the body)} of a RIFF/WAVE file, up to `data`.

    None when the file does not start like a WAV. Only the `fmt ` body is read (its first 64 bytes).
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            chunks: dict[bytes, tuple[int, bytes]] = {}
            while f.tell() < min(size, limit):
                header = f.read(8)
                if len(header) < 8:
                    break
                chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:])[0]
                start = f.tell()
                body = f.read(min(chunk_size, 64)) if chunk_id == b"fmt " else b""
                chunks.setdefault(chunk_id, (chunk_size, body))
                if chunk_id == b"data":
                    break
                f.seek(start + chunk_size + (chunk_size & 1))
            return chunks
    except OSError:
        return None


def header_problem(path: str | os.PathLike) -> str | None:
    """For a WAV that libsndfile refused: an unsupported codec or a truncated header, by name."""
    chunks = riff_chunks(path)
    if chunks is None:
        return None
    fmt = chunks.get(b"fmt ")
    if fmt is None or len(fmt[1]) < 16 or fmt[0] < 16:
        return "truncated wav header" if b"data" not in chunks else "malformed wav header"
    tag = struct.unpack("<H", fmt[1][:2])[0]
    if tag not in DECODABLE_CODECS:
        name = CODEC_NAMES.get(tag)
        return f"unsupported format: wav codec 0x{tag:04x}" + (f" ({name})" if name else "")
    if b"data" not in chunks:
        return "truncated wav header"
    return None


def declared_frames(path: str | os.PathLike) -> int | None:
    """Frames the `data` chunk of a PCM/float WAV declares (None: unknown, streamed or compressed)."""
    chunks = riff_chunks(path)
    if chunks is None:
        return None
    fmt, data = chunks.get(b"fmt "), chunks.get(b"data")
    if fmt is None or data is None or len(fmt[1]) < 16:
        return None
    tag, _channels, _rate, _byte_rate, block_align, _bits = struct.unpack("<HHIIHH", fmt[1][:16])
    # 0 and 0xFFFFFFFF are what streaming writers leave when they never come back to the header
    if tag not in (0x0001, 0x0003, 0xFFFE) or block_align == 0 or data[0] in (0, 0xFFFFFFFF):
        return None
    return data[0] // block_align
