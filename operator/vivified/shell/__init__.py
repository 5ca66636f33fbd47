"""The imperative shell: Kubernetes I/O around the pure core. Nothing here decides policy."""
