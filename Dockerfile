# syntax=docker/dockerfile:1
# The Vivified operator image: `vivified operator` as a non-root user, nothing else.
#
# It installs the project exactly as CI does (Makefile `install`: pip 25.3, then the project
# with the dependencies pinned in pyproject.toml), minus the dev extras and the editable mode.
# Build it from the repository root:  docker build -t vivified-operator:dev .

# The images: runtime and build stage. The test ground passes a base made from Debian's packages
# and a build base that carries host-built wheels (PIP_NO_INDEX, PIP_FIND_LINKS) and builds with
# --network none (hack/cluster/images.py); these defaults are the public images.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BUILD_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment holding the operator and its pinned dependencies ---------------
FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/vivified
ENV PATH=/opt/vivified/bin:$PATH
RUN pip install --no-cache-dir pip==25.3
# Only what `pip install` reads: the build configuration, the package and the SDK.
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY sdk/python ./sdk/python
# pip compiles bytecode as it installs; it stays, since the read-only root filesystem of the
# running container could not hold it, and pip itself goes. The SDK (a dependency of the
# operator, same version) comes from this repository.
RUN pip install --no-cache-dir ./sdk/python . \
 && pip uninstall --yes pip \
 && vivified --version

# -- runtime: the slim base, the venv, a numeric non-root user ------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="vivified-operator" \
      org.opencontainers.image.description="Kubernetes operator for Vivified platform plugins" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/vivified/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/vivified /opt/vivified
# 65532 is "nonroot" by convention; the chart runs it with a read-only root filesystem. It needs a
# passwd entry: kopf names its peering identity after the user (getpass.getuser()), which
# fails for a uid unknown to /etc/passwd (found by running the image on the real node).
RUN groupadd --system --gid 65532 vivified \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vivified
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9443
ENTRYPOINT ["vivified"]
CMD ["operator", "--liveness", "http://0.0.0.0:8080/healthz"]
