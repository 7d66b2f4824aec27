__version__ = "0.1.0"
"""This library's version, recorded in every archive's header and catalog entry."""
