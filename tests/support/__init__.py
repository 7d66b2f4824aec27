"""Helpers the tests share, one module per concern; fixtures live in tests/conftest.py."""
