"""A photo's EXIF on the way to its cut-outs: none by default; on request the camera's data, never the location
unless asked for as well."""
from typing import Optional

from PIL import ExifTags, Image

EXIF_HEADER = b"Exif\x00\x00"  # before the TIFF data in JPEG's APP1 (and in Pillow's ``info["exif"]``)


def kept_exif(exif: Optional[bytes], keep: bool, location: bool = False) -> Optional[bytes]:
    """The EXIF (as stored, with or without ``Exif\\0\\0``) a cut-out carries, as TIFF data: None unless ``keep``.
    The orientation is set to 1 (the pixels are turned already); the GPS data go unless ``location``; the thumbnail
    (IFD1: the whole photo, background and all) and any EXIF Pillow cannot read always go."""
    if not keep or not exif:
        return None
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        if ExifTags.Base.Orientation in parsed:
            parsed[ExifTags.Base.Orientation] = 1
        if not location:
            parsed.pop(ExifTags.IFD.GPSInfo, None)
        data = parsed.tobytes()  # IFD0 and its Exif and GPS IFDs; IFD1 is not written
    except Exception:  # Pillow raises many types for a broken EXIF
        return None
    return data.removeprefix(EXIF_HEADER)
