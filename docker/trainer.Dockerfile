# The trainer: `make train` (pre-training, PPO, ONNX export, evaluation) into /app/runs.
# torch==2.13.0 from PyPI is the CUDA build on x86-64 Linux; compose reserves the GPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
# The Makefile's own set-up (.venv with the dev, train and serve extras), so `make train`
# at run time finds it done.
RUN make install

CMD ["make", "train"]
