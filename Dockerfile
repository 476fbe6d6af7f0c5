# syntax=docker/dockerfile:1
# atomfast: build the two compiled parts as wheels, then install them (and only wheels) into a
# slim runtime image.
#
#   docker build -t atomfast .
#   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 atomfast run --exchange kraken --sink kafka
#
# Without Kafka settings atomfast writes the Avro data lake under /home/atomfast/data (a volume).

ARG PYTHON_VERSION=3.11

# The Rust toolchain (cargo, rustc) of the official image, copied into the build stage.
FROM rust:1-slim AS rust

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
WORKDIR /src
COPY . .
# 1. the Rust Avro encoder (maturin is fetched as its build backend);
# 2. atomfast itself (Cython order book) and wheels of every dependency, finding the local
#    atomfast-avro wheel in /wheels (it is not on PyPI).
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/usr/local/cargo/registry \
    pip wheel --no-deps --wheel-dir /wheels ./native/avro \
 && pip wheel --wheel-dir /wheels --find-links /wheels .

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels atomfast \
 && useradd --create-home --home-dir /home/atomfast --uid 10001 --user-group atomfast \
 && mkdir -p /home/atomfast/data \
 && chown atomfast:atomfast /home/atomfast/data
USER atomfast
# Working directory: config.ini and keys/.env are read from here (mount them read-only),
# the file sink writes under ./data.
WORKDIR /home/atomfast
VOLUME ["/home/atomfast/data"]
ENTRYPOINT ["atomfast"]
CMD ["run", "--exchange", "kraken"]
