# The Factorion planning server and the RCON bridge: one image, two commands
# (`python -m server --host 0.0.0.0`, `python -m server.bridge`). CPU onnxruntime.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The packages the server imports (training/ for the mimic and the expert) and the
# bundled policy under server/. Commands run from /app, so they import this tree.
COPY pyproject.toml README.md ./
COPY shared_schema/ shared_schema/
COPY training/ training/
COPY server/ server/
RUN pip install '.[serve]'

RUN useradd --system --uid 10001 --no-create-home factorion
USER factorion
# The mimic's numba kernels cache their machine code; /app is read-only to this user.
ENV NUMBA_CACHE_DIR=/tmp/numba-cache

EXPOSE 8000
CMD ["python", "-m", "server", "--host", "0.0.0.0"]
