"""Encoders."""
from .swin_encoder import SwinEncoder

__all__ = ['SwinEncoder']
