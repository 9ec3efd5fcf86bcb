from mmmt import _package_check  # noqa: F401  # isort: skip  (first: names the clone-folder trap)
from .image_io import IMG_EXTENSIONS, list_images, pil_to_rgb, read_image_rgb, to_rgb_uint8
from .multitask_inferencer import MultiTaskInferencer, resize_and_activate

__all__ = [
    'MultiTaskInferencer', 'resize_and_activate', 'IMG_EXTENSIONS', 'list_images',
    'pil_to_rgb', 'read_image_rgb', 'to_rgb_uint8'
]
