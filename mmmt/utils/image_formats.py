"""The image formats mmmt lets PIL open (one constant, here so that the inferencer and the
dataset decoders share it without ``mmmt.apis`` importing ``mmmt.datasets`` and its set-up)."""

__all__ = ['PIL_READ_FORMATS']

#: The only formats PIL may take an image or label file for. PIL goes by the content, not the
#: name, and some of its formats are decoded by other programs: an EPS file (named ``.jpg`` in a
#: downloaded dataset or given to the demo) is PostScript that PIL hands to Ghostscript, a
#: language interpreter with a history of sandbox escapes.
PIL_READ_FORMATS = ('JPEG', 'PNG', 'BMP', 'DIB', 'TIFF', 'WEBP', 'PPM', 'GIF')
