# One image for the api, the worker and the migrate job; the command picks the role.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# TORCH_INDEX picks the torch build: the CUDA wheels by default, the CPU ones for a CPU image
# (docker compose build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
COPY requirements.txt requirements-torch.txt ./
RUN pip install -r requirements.txt \
 && pip install --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple -r requirements-torch.txt

COPY alembic.ini ./
COPY shared ./shared
COPY migrations ./migrations
COPY api ./api
COPY worker ./worker
# The `bnlab` admin command (bnlab tokens create NAME); the pins above are the dependencies.
COPY pyproject.toml ./
RUN pip install --no-deps -e .

RUN useradd --create-home bnlab && mkdir -p /data && chown bnlab /data
USER bnlab
ENV BNLAB_DATA_DIR=/data
# The image listens on every interface, so it checks tokens even on the embedded default
# (docker run with no database URL); BNLAB_AUTH=off is a deliberate choice, never an accident.
ENV BNLAB_AUTH=on
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
