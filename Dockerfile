# One image for the api, the worker and the migrate job; the command picks the role.
#
# Build arguments (README, Deployment), for a machine behind a proxy or without the internet:
#   BASE_IMAGE    a Python 3.11 image with `python3 -m venv` (default python:3.11-slim)
#   TORCH_INDEX   the index torch comes from (default: the CUDA 12.8 wheels; .../whl/cpu for CPU)
#   TORCH_WHEELS  a folder of wheels in the build context to take torch from instead of TORCH_INDEX
#   CA_BUNDLE     a PEM file in the build context that pip trusts besides the usual roots
#                 (a network that intercepts TLS)
ARG BASE_IMAGE=python:3.11-slim

# Stage 1: every dependency into a venv. Cached until a requirements file or an argument changes.
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_WHEELS=
ARG CA_BUNDLE=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY requirements.txt requirements-client.txt requirements-torch.txt /build/
# COPY needs a source even when an argument is unset: requirements.txt stands in, unused.
COPY ${CA_BUNDLE:-requirements.txt} /build/extra-ca.pem
COPY ${TORCH_WHEELS:-requirements.txt} /build/wheels/
RUN set -e; \
    if [ -n "$CA_BUNDLE" ]; then \
      cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" /build/extra-ca.pem \
        > /build/ca.pem; \
      export PIP_CERT=/build/ca.pem; \
    fi; \
    pip install -r /build/requirements.txt setuptools==80.9.0; \
    if [ -n "$TORCH_WHEELS" ]; then \
      pip install --find-links /build/wheels -r /build/requirements-torch.txt; \
    else \
      pip install --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple \
        -r /build/requirements-torch.txt; \
    fi

# Stage 2: the venv and the code; no wheel, certificate or pip cache from stage 1 is kept.
FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY shared ./shared
COPY migrations ./migrations
COPY api ./api
COPY worker ./worker
COPY bnlab_client ./bnlab_client
# The `bnlab` command (bnlab tokens create NAME); the pins above are the dependencies.
COPY pyproject.toml ./
RUN pip install --no-deps --no-build-isolation --no-cache-dir -e .

RUN useradd --create-home bnlab && mkdir -p /data && chown bnlab /data
USER bnlab
ENV BNLAB_DATA_DIR=/data
# The image listens on every interface, so it checks tokens even on the embedded default
# (docker run with no database URL); BNLAB_AUTH=off is a deliberate choice, never an accident.
ENV BNLAB_AUTH=on
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
