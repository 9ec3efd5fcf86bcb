"""Reading arbitrary images (files or arrays) as 8-bit RGB for inference."""
import os
import os.path as osp
import warnings
from typing import List, Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmmt.utils.errors import UserInputError
from mmmt.utils.image_formats import PIL_READ_FORMATS

__all__ = ['IMG_EXTENSIONS', 'image_file_problem', 'list_images', 'pil_to_rgb', 'read_image_rgb',
           'to_rgb_uint8']

#: File name endings treated as images when a folder is given (case-insensitive).
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                  '.pbm', '.gif')


def list_images(folder: str) -> List[str]:
    """The image files directly inside ``folder`` (by extension), sorted by name.

    Hidden files (a leading ``.``) are skipped: macOS writes ``._name.jpg`` metadata files
    beside each image on non-Apple disks and in archives, which are not images. Such a file
    named explicitly is read like any other.
    """
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMG_EXTENSIONS) and osp.isfile(osp.join(folder, n)))
    visible = [n for n in names if not n.startswith('.')]
    if not visible:
        hidden = f' (only hidden ones: {", ".join(names[:3])}{" ..." if len(names) > 3 else ""})' \
            if names else ''
        raise UserInputError(
            f'No image files ({", ".join(IMG_EXTENSIONS)}) in folder {folder}{hidden}')
    names = visible
    return [osp.join(folder, n) for n in names]


def to_rgb_uint8(img: np.ndarray, name: str = 'array') -> np.ndarray:
    """Convert an image array to (H, W, 3) uint8 RGB.

    Accepted: (H, W), (H, W, 1) grayscale; (H, W, 3) RGB; (H, W, 4) RGBA (alpha dropped);
    (H, W, 2) grayscale + alpha. dtypes: uint8; uint16 (16-bit, scaled by 1/256 like Pillow
    does for 16-bit colour PNGs; a warning when no value exceeds 255, which reads as nearly
    black); other integers (int64 from ``np.array(img, int)``, int32...): 8-bit values if
    none is above 255, else clipped to 16 bits and scaled as uint16; bool; floats (in [0, 1]
    if the maximum is <= 1, else in [0, 255], clipped). Negative values are clipped to 0.

    Args:
        img (np.ndarray): The image.
        name (str): How to name it in error messages.
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha
        img = img[..., 0]
    if img.ndim == 3 and img.shape[2] == 4:  # RGBA
        img = img[..., :3]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f'{name}: expected an image of shape (H, W), (H, W, 1), (H, W, 3) or '
                         f'(H, W, 4), got {img.shape}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{name}: empty image of shape {img.shape}')
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.integer):
        top = int(img.max())
        if img.dtype == np.uint16 and top <= 255:
            warnings.warn(f'{name}: a uint16 image is read as 16-bit (value / 256), and none of '
                          f'its values exceeds {top}: it is nearly black; pass '
                          'img.astype(np.uint8) if these are 8-bit values')
        if img.dtype != np.uint16 and top <= 255:
            # an 8-bit image held in a wider integer type (arithmetic, np.array(img, int)):
            # scaled as 16-bit it would be black
            img = np.clip(img, 0, 255).astype(np.uint8)
        else:
            img = (np.clip(img, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
    elif np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float32)
        if not np.isfinite(img).all():
            raise ValueError(f'{name}: the image contains NaN or infinite values')
        if img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f'{name}: unsupported image dtype {img.dtype}')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img)


def read_image_rgb(path: str) -> np.ndarray:
    """Read an image file of any common format as (H, W, 3) uint8 RGB.

    The EXIF orientation is applied (photos appear as they are displayed); the first frame of
    multi-frame files is used; alpha is dropped; 16-bit images keep their top 8 bits; palette,
    CMYK, YCbCr, 1-bit and float images are converted to RGB.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: ``path`` is not a readable image (the message names the file).
    """
    if not osp.exists(path):
        raise FileNotFoundError(f'Input image not found: {path}')
    if osp.isdir(path):
        raise IsADirectoryError(f'Expected an image file, got the folder {path}')
    try:
        with Image.open(path, formats=PIL_READ_FORMATS) as im:
            im.load()
            return pil_to_rgb(im, path)
    except UnidentifiedImageError as e:
        raise OSError(f'Cannot read {path}: not an image file in a format Pillow knows') from e
    except (OSError, ValueError, SyntaxError) as e:  # truncated / corrupt data
        raise OSError(f'Cannot read image file {path}: {e}') from e
    except Image.DecompressionBombError as e:  # not an OSError
        raise OSError(f'Cannot read image file {path}: {e} (raise PIL.Image.MAX_IMAGE_PIXELS '
                      'if the file is genuine)') from e


def pil_to_rgb(im: Image.Image, name: str = 'image') -> np.ndarray:
    """A PIL image (loaded) as (H, W, 3) uint8 RGB, converted as :func:`read_image_rgb`
    converts files: EXIF orientation applied, alpha dropped, 16-bit to its top 8 bits,
    palette, CMYK, YCbCr, 1-bit and float modes to RGB.

    Args:
        im (PIL.Image.Image): The image.
        name (str): How to name it in error messages.
    """
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a corrupt EXIF block should not make the image unreadable
        pass
    if im.mode in ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F'):
        return to_rgb_uint8(_high_depth_array(im), name)
    if im.mode != 'RGB':
        im = im.convert('RGB')  # drops alpha; palette, CMYK, L, LA, 1... to RGB
    return to_rgb_uint8(np.asarray(im), name)


def image_file_problem(path: str) -> Optional[str]:
    """Why ``path`` is not an image file Pillow can open, or None.

    Reads the header and what :meth:`PIL.Image.Image.verify` checks (PNG chunk checksums, for
    example), without decoding the pixels: cheap enough to check a folder before a model is
    built; a file damaged inside its pixel data is still only found by
    :func:`read_image_rgb`.
    """
    try:
        with Image.open(path, formats=PIL_READ_FORMATS) as im:
            im.verify()
    except UnidentifiedImageError:
        return 'not an image file in a format Pillow knows'
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return f'{type(e).__name__}: {e}'
    return None


def _high_depth_array(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im)
    if im.mode == 'F':
        return arr.astype(np.float32)
    if im.mode == 'I' and arr.size and arr.max() > 65535:
        # genuine 32-bit data: scale the used range into 16 bits
        arr = arr.astype(np.float64) * (65535.0 / float(arr.max()))
    return np.clip(arr, 0, 65535).astype(np.uint16)


ImageInput = Union[str, np.ndarray]
