"""monetr itself: its configuration (``config``) read into the library's settings (``instance``)."""

from .instance import MonetrInstance

__all__ = ["MonetrInstance"]
