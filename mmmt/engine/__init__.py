from mmmt import _package_check  # noqa: F401,I001  (names the clone-folder trap)
__all__ = []
