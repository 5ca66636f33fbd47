"""Vivified operator: runs Vivified platform plugins as VivifiedPlugin custom resources."""
