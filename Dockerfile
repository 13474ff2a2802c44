# syntax=docker/dockerfile:1
# The littleflow image: `docker build -t littleflow:0.1.0 .` at the top of the repository.
# Stage 1 builds littleflow's wheel and installs it, with the `kubernetes` extra, into a
# virtual environment; stage 2 is a slim Python with that environment only (no compiler, no
# pip cache, no sources), run as an unprivileged user. ENTRYPOINT is the littleflow command:
#   docker run --rm littleflow:0.1.0 engine --redis redis://…
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN pip install build \
 && python -m venv /opt/littleflow/venv
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# (the venv keeps its pip: an image built FROM this one installs its tasks' dependencies with it)
RUN python -m build --wheel --outdir /dist . \
 && wheel="$(ls /dist/littleflow-*.whl)" \
 && /opt/littleflow/venv/bin/pip install "${wheel}[kubernetes]"

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="littleflow" \
      org.opencontainers.image.description="A little workflow language and engine" \
      org.opencontainers.image.licenses="Apache-2.0"
# a fixed numeric id, so that Kubernetes can check runAsNonRoot (deploy/kubernetes uses 10001)
RUN groupadd --system --gid 10001 littleflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
            --shell /usr/sbin/nologin littleflow
COPY --from=build /opt/littleflow/venv /opt/littleflow/venv
# the tasks of examples/hello.flow, which the Kubernetes manifests run until you bring yours
COPY examples/hello.flow examples/hello_tasks.py /opt/littleflow/examples/
ENV PATH=/opt/littleflow/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["littleflow"]
CMD ["--help"]
