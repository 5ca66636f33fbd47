"""Placeholder; replaced by the CLI module."""


def main() -> int:
    return 0
